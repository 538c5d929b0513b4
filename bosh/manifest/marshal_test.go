package manifest

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRoundTrip checks Parse(Marshal(m)) == m for every valid test
// manifest, and that writing again gives the same bytes.
func TestRoundTrip(t *testing.T) {
	for _, name := range []string{"tkgi.yml", "anchors.yml", "minimal.yml"} {
		t.Run(name, func(t *testing.T) {
			m, err := Parse(readFile(t, name))
			require.NoError(t, err)
			out, err := m.Marshal()
			require.NoError(t, err)
			back, err := Parse(out)
			require.NoError(t, err, "%s", out)
			assert.Equal(t, m, back)
			again, err := back.Marshal()
			require.NoError(t, err)
			assert.Equal(t, string(out), string(again))
		})
	}
}

// TestMarshal checks the exact output: BOSH's key order, lists not
// indented under their key, counts as integers and percentages as
// strings, a single watch time as an integer and a range as a string,
// numbers that read back as the same type, multi-line strings as
// literal blocks, an empty properties map kept.
func TestMarshal(t *testing.T) {
	m := &Manifest{
		Name:      "demo",
		Tags:      map[string]string{"team": "k8s", "env": "prod"},
		Features:  &Features{UseDNSAddresses: new(true), Other: Map{"new_feature": 1}},
		Variables: []Variable{{Name: "ca", Type: VariableCertificate, Options: Map{"is_ca": true, "common_name": "ca"}}},
		InstanceGroups: []InstanceGroup{{
			Networks: []Network{{Name: "default", StaticIPs: []string{"10.0.0.10"}}},
			Stemcell: "default",
			VMType:   "small",
			Jobs: []Job{{Release: "kubo", Name: "kubelet", Properties: Map{
				"ratio": 3.0, "max": 110, "big": uint64(18446744073709551615), "inf": 0.5e-9,
				"cert":    "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n",
				"version": "1.10", "enabled": "true", "empty": nil, "list": []any{"a", 1},
			}}, {Name: "bpm", Release: "bpm", Properties: Map{}}},
			Instances: 1,
			Name:      "worker",
			Update:    &Update{MaxInFlight: MaxInFlightPercent(30), CanaryWatchTime: Watch(30 * time.Second)},
		}},
		Update: &Update{
			Serial: new(false), UpdateWatchTime: WatchRange(time.Second, 30*time.Second), CanaryWatchTime: Watch(5 * time.Second),
			MaxInFlight: MaxInFlightCount(4), Canaries: CanaryPercent(10), VMStrategy: VMStrategyCreateSwapDelete,
		},
		Stemcells: []Stemcell{{Version: "1.83", OS: "ubuntu-jammy", Alias: "default"}},
		Releases:  []Release{{Version: "1.19", Name: "kubo"}, {Name: "bpm", Version: "1.1.21"}},
	}
	out, err := m.Marshal()
	require.NoError(t, err)
	assert.Equal(t, `name: demo
features:
  use_dns_addresses: true
  new_feature: 1
releases:
- name: kubo
  version: "1.19"
- name: bpm
  version: 1.1.21
stemcells:
- alias: default
  os: ubuntu-jammy
  version: "1.83"
update:
  canaries: 10%
  max_in_flight: 4
  canary_watch_time: 5000
  update_watch_time: 1000-30000
  serial: false
  vm_strategy: create-swap-delete
instance_groups:
- name: worker
  instances: 1
  jobs:
  - name: kubelet
    release: kubo
    properties:
      big: 18446744073709551615
      cert: |
        -----BEGIN CERTIFICATE-----
        MIIB
        -----END CERTIFICATE-----
      empty: null
      enabled: "true"
      inf: 5e-10
      list:
      - a
      - 1
      max: 110
      ratio: 3.0
      version: "1.10"
  - name: bpm
    release: bpm
    properties: {}
  vm_type: small
  stemcell: default
  networks:
  - name: default
    static_ips:
    - 10.0.0.10
  update:
    max_in_flight: 30%
    canary_watch_time: 30000
variables:
- name: ca
  type: certificate
  options:
    common_name: ca
    is_ca: true
tags:
  env: prod
  team: k8s
`, string(out))

	back, err := Parse(out)
	require.NoError(t, err)
	assert.Equal(t, m, back, "round trip of a manifest built in Go")
}

func TestMarshalBadValue(t *testing.T) {
	m := &Manifest{Name: "x", Properties: Map{"f": func() {}}}
	_, err := m.Marshal()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot write a func()")

	m.Properties = Map{"s": []string{"a"}, "n": int32(3), "m": map[string]int{"a": 1}}
	out, err := m.Marshal()
	require.NoError(t, err, "other Go types go through the YAML encoder")
	assert.Contains(t, string(out), "properties:\n  m:\n    a: 1\n  n: 3\n  s:\n  - a\n")
}

func TestJSON(t *testing.T) {
	m, err := Parse(readFile(t, "tkgi.yml"))
	require.NoError(t, err)
	b, err := json.Marshal(m)
	require.NoError(t, err)
	assert.Contains(t, string(b), `"update":{"canaries":1,"max_in_flight":"30%","canary_watch_time":"10000-300000","update_watch_time":"10000-300000","serial":true,"vm_strategy":"delete-create"}`)
	assert.Contains(t, string(b), `"features":{"randomize_az_placement":false,"use_dns_addresses":true,"use_short_dns_addresses":true}`)
	var back Manifest
	require.NoError(t, json.Unmarshal(b, &back))
	assert.Equal(t, m.Update, back.Update)
	assert.Equal(t, m.Features, back.Features)
	assert.Equal(t, m.InstanceGroup("worker").Update, back.InstanceGroup("worker").Update)
	assert.Equal(t, m.Tags, back.Tags)

	f := Features{UseDNSAddresses: new(true), Other: Map{"new_feature": "on"}}
	b, err = json.Marshal(f)
	require.NoError(t, err)
	assert.JSONEq(t, `{"use_dns_addresses":true,"new_feature":"on"}`, string(b), "one object, as in YAML")
	var fb Features
	require.NoError(t, json.Unmarshal(b, &fb))
	assert.Equal(t, f, fb)
	require.Error(t, json.Unmarshal([]byte(`{"use_dns_addresses":"yes"}`), &fb))
}
