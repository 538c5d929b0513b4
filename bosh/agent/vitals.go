package agent

import (
	"os"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/kubefoundry/kubefoundry/bosh/mbus"
)

// vitals reads the machine's vital signs as the agent reports them: load,
// memory and swap from sysinfo and /proc, and the use of the disks under
// the layout (system: its root; ephemeral: data; persistent: store, when
// there). CPU percentages are left out: they need two samples.
func vitals(l Layout) mbus.Vitals {
	var v mbus.Vitals
	var si unix.Sysinfo_t
	if unix.Sysinfo(&si) == nil {
		unit := uint64(si.Unit)
		if unit == 0 {
			unit = 1
		}
		v.Uptime.Secs = uint64(si.Uptime)
		total, free := uint64(si.Totalram)*unit, uint64(si.Freeram+si.Bufferram)*unit
		if avail, ok := memAvailable(); ok {
			free = avail
		}
		if total > 0 {
			used := total - min(free, total)
			v.Mem = mbus.MemVitals{KB: strconv.FormatUint(used/1024, 10), Percent: percent(used, total)}
		}
		st, sf := uint64(si.Totalswap)*unit, uint64(si.Freeswap)*unit
		v.Swap = mbus.MemVitals{KB: strconv.FormatUint((st-min(sf, st))/1024, 10), Percent: percent(st-min(sf, st), st)}
		for _, l := range si.Loads {
			v.Load = append(v.Load, strconv.FormatFloat(float64(l)/65536, 'f', 2, 64))
		}
	}
	v.Disk = mbus.DiskVitals{}
	for name, dir := range map[string]string{"system": l.Root, "ephemeral": l.Root + "/data", "persistent": l.StoreDir()} {
		if u, ok := diskUse(dir); ok {
			v.Disk[name] = u
		}
	}
	return v
}

func memAvailable() (uint64, bool) {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0, false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			f := strings.Fields(rest)
			if len(f) > 0 {
				kb, err := strconv.ParseUint(f[0], 10, 64)
				return kb * 1024, err == nil
			}
		}
	}
	return 0, false
}

func diskUse(dir string) (mbus.DiskUse, bool) {
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) != nil || st.Blocks == 0 {
		return mbus.DiskUse{}, false
	}
	u := mbus.DiskUse{Percent: percent(st.Blocks-st.Bfree, st.Blocks)}
	if st.Files > 0 {
		u.InodePercent = percent(st.Files-st.Ffree, st.Files)
	}
	return u, true
}

func percent(used, total uint64) string {
	if total == 0 {
		return "0"
	}
	return strconv.FormatUint((used*100+total/2)/total, 10)
}
