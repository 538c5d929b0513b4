package director

import (
	"errors"
	"fmt"
	"strings"

	"github.com/kubefoundry/kubefoundry"
	"go.yaml.in/yaml/v3"

	"github.com/kubefoundry/kubefoundry/bosh/cloudconfig"
	"github.com/kubefoundry/kubefoundry/bosh/opsfile"
)

// UpdateConfig checks a config and records it as the next version of the
// config of typ (ConfigCloud, ConfigRuntime) and name, as `bosh
// update-config` does: the next deploys use it with the other current
// configs of its type, merged as BOSH merges named configs (see
// cloudconfig.MergeCloud, MergeRuntime). A config that does not parse, or
// that the others of its type cannot be merged with, is refused and
// nothing is recorded. The same content as the current version records
// nothing; the record returned is the current version either way.
func (d *Director) UpdateConfig(typ, name string, content []byte) (ConfigRecord, error) {
	if name == "" || strings.ContainsAny(name, "/\x00") {
		return ConfigRecord{}, &kubefoundry.FieldError{Field: "name", Value: name, Reason: "a config needs a name without /"}
	}
	if _, err := parseConfig(typ, name, content); err != nil {
		return ConfigRecord{}, err
	}
	cur, err := d.cfg.Store.Configs(typ)
	if err != nil {
		return ConfigRecord{}, err
	}
	replaced := false
	for i := range cur {
		if cur[i].Name == name {
			cur[i].Content, replaced = content, true
		}
	}
	if !replaced {
		cur = append(cur, ConfigRecord{Type: typ, Name: name, Content: content})
	}
	if len(cur) > 1 {
		if _, _, err := mergeConfigs(typ, cur); err != nil {
			return ConfigRecord{}, err
		}
	}
	rec, _, err := d.cfg.Store.PutConfig(typ, name, content)
	return rec, err
}

// DeleteConfig ends a config of typ and name, as `bosh delete-config`
// does: the next deploys no longer use it; its versions stay readable by
// id (Store.Config), and the deployments deployed with it keep it until
// they are deployed again. It reports whether there was one.
func (d *Director) DeleteConfig(typ, name string) (bool, error) {
	if _, err := parseConfig(typ, name, nil); err != nil && errors.Is(err, errConfigType) {
		return false, err
	}
	return d.cfg.Store.DeleteConfig(typ, name)
}

// Configs lists the current version of each config of typ (every type
// when ""), by type, then name.
func (d *Director) Configs(typ string) ([]ConfigRecord, error) { return d.cfg.Store.Configs(typ) }

// UpdateCloudConfig makes content the default cloud config: UpdateConfig
// of ConfigCloud, DefaultConfig.
func (d *Director) UpdateCloudConfig(content []byte) error {
	_, err := d.UpdateConfig(ConfigCloud, DefaultConfig, content)
	return err
}

// UpdateRuntimeConfig makes content the default runtime config:
// UpdateConfig of ConfigRuntime, DefaultConfig. A runtime config's
// releases join each deployment's, and its add-ons are placed on the
// instance groups their rules select.
func (d *Director) UpdateRuntimeConfig(content []byte) error {
	_, err := d.UpdateConfig(ConfigRuntime, DefaultConfig, content)
	return err
}

var errConfigType = errors.New("not a config type")

// parseConfig reads one config: the default cloud config whole, another
// named one as a part of the merged config, a runtime config. With
// content nil it only checks typ.
func parseConfig(typ, name string, content []byte) (any, error) {
	switch typ {
	case ConfigCloud:
		if content == nil {
			return nil, nil
		}
		if name == DefaultConfig {
			return cloudconfig.Parse(content)
		}
		return cloudconfig.ParsePart(content)
	case ConfigRuntime:
		if content == nil {
			return nil, nil
		}
		return cloudconfig.ParseRuntime(content)
	}
	return nil, &kubefoundry.FieldError{Field: "type", Value: typ, Reason: fmt.Sprintf("%v: %s or %s", errConfigType, ConfigCloud, ConfigRuntime)}
}

// mergeConfigs parses and merges configs of one type, in the order
// given. It returns the merged cloud config or runtime config (nil when
// there are no configs).
func mergeConfigs(typ string, recs []ConfigRecord) (*cloudconfig.CloudConfig, *cloudconfig.RuntimeConfig, error) {
	if len(recs) == 0 {
		return nil, nil, nil
	}
	var ccs []cloudconfig.Named[cloudconfig.CloudConfig]
	var rcs []cloudconfig.Named[cloudconfig.RuntimeConfig]
	for _, r := range recs {
		v, err := parseConfig(typ, r.Name, r.Content)
		if err != nil {
			return nil, nil, fmt.Errorf("%s config %s: %w", typ, r.Name, err)
		}
		switch c := v.(type) {
		case *cloudconfig.CloudConfig:
			ccs = append(ccs, cloudconfig.Named[cloudconfig.CloudConfig]{Name: r.Name, Config: c})
		case *cloudconfig.RuntimeConfig:
			rcs = append(rcs, cloudconfig.Named[cloudconfig.RuntimeConfig]{Name: r.Name, Config: c})
		}
	}
	if typ == ConfigCloud {
		cc, err := cloudconfig.MergeCloud(ccs...)
		return cc, nil, err
	}
	rc, err := cloudconfig.MergeRuntime(rcs...)
	return nil, rc, err
}

// deployConfigs are the cloud and runtime configs a deploy uses: every
// current one, merged, and the ids of their versions to record. There
// must be a cloud config; a runtime config is optional.
type deployConfigs struct {
	cc  *cloudconfig.CloudConfig
	rc  *cloudconfig.RuntimeConfig
	ids []int64
}

// currentConfigs are the current configs, for deploying deployment: its
// runtime configs' variables generated into its variables store when
// generate, and their ((placeholders)) interpolated from it.
func (d *Director) currentConfigs(deployment string, generate bool) (*deployConfigs, error) {
	clouds, err := d.cfg.Store.Configs(ConfigCloud)
	if err != nil {
		return nil, err
	}
	if len(clouds) == 0 {
		return nil, fmt.Errorf("no cloud config: %w", kubefoundry.ErrNotFound)
	}
	runtimes, err := d.cfg.Store.Configs(ConfigRuntime)
	if err != nil {
		return nil, err
	}
	return d.configsOf(deployment, clouds, runtimes, generate)
}

func (d *Director) configsOf(deployment string, clouds, runtimes []ConfigRecord, generate bool) (*deployConfigs, error) {
	dc := &deployConfigs{}
	var err error
	if dc.cc, _, err = mergeConfigs(ConfigCloud, clouds); err != nil {
		return nil, err
	}
	if len(runtimes) > 0 {
		rcs := make([]cloudconfig.Named[cloudconfig.RuntimeConfig], len(runtimes))
		for i, r := range runtimes {
			rc, err := d.runtimeFor(deployment, r, generate)
			if err != nil {
				return nil, err
			}
			rcs[i] = cloudconfig.Named[cloudconfig.RuntimeConfig]{Name: r.Name, Config: rc}
		}
		if dc.rc, err = cloudconfig.MergeRuntime(rcs...); err != nil {
			return nil, err
		}
	}
	for _, r := range append(clouds, runtimes...) {
		dc.ids = append(dc.ids, r.ID)
	}
	return dc, nil
}

// recordedConfigs are the configs a deployment was last deployed with.
func (d *Director) recordedConfigs(dep Deployment) (*deployConfigs, error) {
	if len(dep.Configs) == 0 {
		// Recorded by a director before config versions.
		dc := &deployConfigs{}
		var err error
		if dc.cc, err = cloudconfig.Parse(dep.CloudConfig); err != nil {
			return nil, fmt.Errorf("its recorded cloud config: %w", err)
		}
		if len(dep.RuntimeConfig) > 0 {
			if dc.rc, err = cloudconfig.ParseRuntime(dep.RuntimeConfig); err != nil {
				return nil, fmt.Errorf("its recorded runtime config: %w", err)
			}
		}
		return dc, nil
	}
	var clouds, runtimes []ConfigRecord
	for _, id := range dep.Configs {
		rec, err := d.cfg.Store.Config(id)
		if err != nil {
			return nil, fmt.Errorf("its recorded config %d: %w", id, err)
		}
		if rec.Type == ConfigCloud {
			clouds = append(clouds, rec)
		} else {
			runtimes = append(runtimes, rec)
		}
	}
	return d.configsOf(dep.Name, clouds, runtimes, false)
}

// runtimeFor reads a runtime config as deployment sees it: the variables
// its variables block declares generated into the deployment's variables
// store when generate (as BOSH generates a runtime config's variables for
// each deployment), then its ((placeholders)) interpolated from that
// store.
func (d *Director) runtimeFor(deployment string, rec ConfigRecord, generate bool) (*cloudconfig.RuntimeConfig, error) {
	rc, err := cloudconfig.ParseRuntime(rec.Content)
	if err != nil {
		return nil, fmt.Errorf("runtime config %s: %w", rec.Name, err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(rec.Content, &doc); err != nil {
		return nil, fmt.Errorf("runtime config %s: %w", rec.Name, err)
	}
	if len(rc.Variables) == 0 && !hasPlaceholder(&doc) {
		return rc, nil
	}
	vars, err := d.variables(deployment)
	if err != nil {
		return nil, err
	}
	if generate {
		if err := vars.Generate(rc.Variables); err != nil {
			return nil, fmt.Errorf("deployment %s: runtime config %s: variables: %w", deployment, rec.Name, err)
		}
	}
	if err := opsfile.Interpolate(&doc, vars); err != nil {
		return nil, fmt.Errorf("deployment %s: runtime config %s: %w", deployment, rec.Name, err)
	}
	out, err := yaml.Marshal(&doc)
	if err != nil {
		return nil, err
	}
	return cloudconfig.ParseRuntime(out)
}

// Instances are the deployment's instances as the director recorded
// them, by instance group and index.
func (d *Director) Instances(deployment string) ([]InstanceRecord, error) {
	return d.cfg.Store.Instances(deployment)
}

// Deployments are the deployments the director has, by name (bosh
// deployments).
func (d *Director) Deployments() ([]Deployment, error) {
	return d.cfg.Store.Deployments()
}
