// Command benchtable reads the output of `go test -bench -v` (the
// standard Go benchmark format, with the test framework's SKIP and FAIL
// lines) and prints, for every figure of a targets file, its value, its
// target and whether the value meets it; a figure whose benchmark did not
// run says why (its skip message, its failure, or its package's).
//
//	benchtable -targets hack/bench/targets.yaml bench-results/latest.txt [bench-results/govc-latest.txt]
//
// The output must be -v's: without it, the framework does not print
// skipped benchmarks at all.
//
// It exits 2 on bad input, and otherwise 0: speed figures on a shared
// machine are for reading, not for gating; with -strict it exits 1 when a
// target is missed (a figure that did not run is not a miss).
package main

import (
	"bufio"
	"bytes"
	"flag"
	"fmt"
	"io"
	"os"
	"regexp"
	"strconv"
	"strings"
	"text/tabwriter"

	"go.yaml.in/yaml/v3"
	"golang.org/x/perf/benchfmt"
)

// Target is one figure the SDK promises.
type Target struct {
	// Package is the package path under the module ("vsphere",
	// "bosh/director").
	Package string `yaml:"package"`
	// Benchmark is the benchmark's name without "Benchmark" and without
	// the GOMAXPROCS suffix, sub-benchmarks included
	// ("BuildTopology/namespaces=10").
	Benchmark string `yaml:"benchmark"`
	// Metric is the unit the benchmark reports the figure in.
	Metric string `yaml:"metric"`
	// Target is "<= x" or ">= x"; empty for a yardstick, a figure shown
	// beside the others to read them by and not judged.
	Target string `yaml:"target"`
	// Reason says where the target comes from: the peer it is measured
	// against, or the physical limit.
	Reason string `yaml:"reason"`
}

const module = "github.com/kubefoundry/kubefoundry/"

func main() {
	targetsFile := flag.String("targets", "hack/bench/targets.yaml", "the targets file")
	strict := flag.Bool("strict", false, "exit 1 when a target is missed")
	flag.Parse()
	if flag.NArg() < 1 {
		fmt.Fprintln(os.Stderr, "usage: benchtable -targets FILE BENCH-OUTPUT...")
		os.Exit(2)
	}
	targets, err := readTargets(*targetsFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(2)
	}
	var raw []byte
	for _, f := range flag.Args() {
		b, err := os.ReadFile(f)
		if err != nil {
			fmt.Fprintln(os.Stderr, "benchtable:", err)
			os.Exit(2)
		}
		raw = append(append(raw, b...), '\n')
	}
	run, err := parse(raw)
	if err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(2)
	}
	missed := table(os.Stdout, targets, run)
	fmt.Printf("\n%d of %d targets missed (a figure that did not run is not counted)\n", missed, len(targets))
	if missed > 0 && *strict {
		os.Exit(1)
	}
}

func readTargets(path string) ([]Target, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var ts []Target
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	if err := dec.Decode(&ts); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	var problems []string
	for i, t := range ts {
		if t.Target == "" {
			continue // a yardstick: shown, not judged
		}
		if _, _, err := parseTarget(t.Target); err != nil {
			problems = append(problems, fmt.Sprintf("entry %d (%s %s): %v", i+1, t.Benchmark, t.Metric, err))
		}
		if t.Package == "" || t.Benchmark == "" || t.Metric == "" || t.Reason == "" {
			// Every figure says where its target comes from.
			problems = append(problems, fmt.Sprintf("entry %d: package, benchmark, metric and reason are required", i+1))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s: %s", path, strings.Join(problems, "; "))
	}
	return ts, nil
}

// parseTarget reads "<= 3" or ">= 200".
func parseTarget(s string) (op string, v float64, err error) {
	f := strings.Fields(s)
	if len(f) != 2 || (f[0] != "<=" && f[0] != ">=") {
		return "", 0, fmt.Errorf("target %q: want \"<= x\" or \">= x\"", s)
	}
	v, err = strconv.ParseFloat(f[1], 64)
	if err != nil {
		return "", 0, fmt.Errorf("target %q: %v", s, err)
	}
	return f[0], v, nil
}

// key names a benchmark of a package.
type key struct{ pkg, bench string }

// results are what one run said of each benchmark.
type results struct {
	values map[key]map[string]float64
	// why a benchmark, or a whole package, did not give a result.
	skipped    map[key]string
	failed     map[key]string
	pkgFailed  map[string]string
	pkgsSeen   map[string]bool
	benchsSeen map[key]bool
}

var (
	skipRE   = regexp.MustCompile(`^\s*--- (SKIP|FAIL): Benchmark(\S+)`)
	logRE    = regexp.MustCompile(`^\s+\S+\.go:\d+: (.*)$`)
	nameRE   = regexp.MustCompile(`^Benchmark\S+$`)
	pkgEndRE = regexp.MustCompile(`^(ok|FAIL|\?)\s+(\S+)(\s+\[(.*)\])?`)
)

func shortPkg(p string) string { return strings.TrimPrefix(p, module) }

// benchName is a result's name without GOMAXPROCS.
func benchName(n benchfmt.Name) string {
	base, parts := n.Parts()
	var b strings.Builder
	b.Write(bytes.TrimPrefix(base, []byte("Benchmark")))
	for _, p := range parts {
		if len(p) > 0 && p[0] == '-' {
			continue // GOMAXPROCS
		}
		b.Write(p)
	}
	return b.String()
}

func parse(raw []byte) (*results, error) {
	r := &results{values: map[key]map[string]float64{}, skipped: map[key]string{}, failed: map[key]string{},
		pkgFailed: map[string]string{}, pkgsSeen: map[string]bool{}, benchsSeen: map[key]bool{}}
	br := benchfmt.NewReader(bytes.NewReader(raw), "bench")
	for br.Scan() {
		res, ok := br.Result().(*benchfmt.Result)
		if !ok {
			continue
		}
		k := key{shortPkg(res.GetConfig("pkg")), benchName(res.Name)}
		if r.values[k] == nil {
			r.values[k] = map[string]float64{}
		}
		for _, v := range res.Values {
			r.values[k][v.Unit] = v.Value
		}
		r.benchsSeen[k] = true
	}
	if err := br.Err(); err != nil {
		return nil, err
	}
	// SKIP and FAIL lines name a benchmark; the package is the one of the
	// "ok" or "FAIL" line that ends its output.
	type pending struct {
		kind, bench, why string
	}
	var open []pending
	// With -v, what a benchmark logs comes between the line naming it
	// and its --- SKIP or --- FAIL line: the last of it says why.
	var lastLog string
	sc := bufio.NewScanner(bytes.NewReader(raw))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if nameRE.MatchString(line) {
			lastLog = ""
			continue
		}
		if m := skipRE.FindStringSubmatch(line); m != nil {
			open = append(open, pending{kind: m[1], bench: m[2], why: lastLog})
			lastLog = ""
			continue
		}
		if m := logRE.FindStringSubmatch(line); m != nil {
			lastLog = m[1]
			continue
		}
		if m := pkgEndRE.FindStringSubmatch(line); m != nil && strings.Contains(m[2], ".") {
			pkg := shortPkg(m[2])
			r.pkgsSeen[pkg] = true
			if m[1] == "FAIL" {
				why := "the package failed"
				if m[4] != "" {
					why = "the package failed: " + m[4]
				}
				r.pkgFailed[pkg] = why
			}
			for _, p := range open {
				k := key{pkg, trimProcs(p.bench)}
				if p.kind == "SKIP" {
					r.skipped[k] = p.why
				} else {
					r.failed[k] = p.why
				}
			}
			open = nil
		}
	}
	return r, sc.Err()
}

// trimProcs drops a "-N" GOMAXPROCS suffix from a benchmark name.
func trimProcs(s string) string {
	if i := strings.LastIndexByte(s, '-'); i > 0 {
		if _, err := strconv.Atoi(s[i+1:]); err == nil {
			return s[:i]
		}
	}
	return s
}

// table prints the table and returns how many targets were missed.
func table(w io.Writer, targets []Target, r *results) int {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "PACKAGE\tFIGURE\tVALUE\tTARGET\tMET")
	missed := 0
	for _, t := range targets {
		k := key{t.Package, t.Benchmark}
		figure := t.Benchmark + " " + t.Metric
		op, want, _ := parseTarget(t.Target)
		v, ok := r.values[k][t.Metric]
		switch {
		case ok && t.Target == "":
			fmt.Fprintf(tw, "%s\t%s\t%s\t-\t(yardstick)\n", t.Package, figure, format(v))
		case ok:
			met := (op == "<=" && v <= want) || (op == ">=" && v >= want)
			mark := "yes"
			if !met {
				mark = "NO"
				missed++
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", t.Package, figure, format(v), t.Target, mark)
		default:
			fmt.Fprintf(tw, "%s\t%s\t-\t%s\t%s\n", t.Package, figure, t.Target, notRun(r, k, t.Metric))
		}
	}
	_ = tw.Flush()
	return missed
}

// notRun says why a figure has no value.
func notRun(r *results, k key, metric string) string {
	base := k
	if i := strings.IndexByte(k.bench, '/'); i >= 0 {
		base.bench = k.bench[:i]
	}
	for _, kk := range []key{k, base} {
		if why, ok := r.skipped[kk]; ok {
			return "skipped: " + orUnknown(why)
		}
		if why, ok := r.failed[kk]; ok {
			return "failed: " + orUnknown(why)
		}
	}
	if why, ok := r.pkgFailed[k.pkg]; ok {
		return "not run: " + why
	}
	if r.benchsSeen[k] {
		return "not run: the benchmark reported no " + metric
	}
	if !r.pkgsSeen[k.pkg] {
		return "not run: the package is not in this run"
	}
	return "not run: no such benchmark in the package"
}

func orUnknown(s string) string {
	if s == "" {
		return "no reason given"
	}
	return s
}

// format prints a value with three significant digits, as benchstat does.
func format(v float64) string {
	return strconv.FormatFloat(v, 'g', 3, 64)
}
