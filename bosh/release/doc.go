// Package release makes, reads and checks BOSH release tarballs: the
// tarball `bosh create-release --tarball` writes and `bosh
// upload-release` takes, with its release.MF, job tarballs (job.MF,
// monit, templates/), package tarballs (the package's files and its
// packaging script) and license.tgz.
//
//	var tgz bytes.Buffer
//	m, err := release.Create(ctx, "kf-release", &tgz, release.WithVersion("1.10"))
//	...
//	rel, err := release.Open(ctx, "kf-release-1.10.tgz")
//	if err != nil {
//		return err // a digest mismatch names the entry and both digests
//	}
//	nats := rel.Job("nats")        // its JobSpec, job.MF, monit and template bytes
//	erb := nats.Templates["nats.conf.erb"]
//	err = rel.ExtractPackage(ctx, "golang", dir)
//
// # Making a release
//
// Create reads a release directory as bosh create-release does
// (jobs/<name>/spec with monit and templates/, packages/<name>/spec with
// packaging, the files package specs' globs select from src/ then blobs/,
// LICENSE* and NOTICE*) and writes a release tarball. Fingerprints are
// computed as bosh-cli v7 computes them (see Fingerprint for the exact
// string hashed), SHA-1 by default or SHA-256 with WithAlgorithm, so
// the same sources give the fingerprints `bosh create-release` gives; the
// tests check a published package fingerprint (dummy-boshrelease) and a
// published SHA-256 job fingerprint (os-conf-release 23.0.3). The
// version is WithVersion's, or DevVersion's ("0+dev." and 12 hex digits
// of the fingerprints), so the same directory gives the same version.
// The output is byte-for-byte the same for the same directory (fixed
// entry order, epoch mtimes, owners 0, modes 0644/0755). Every problem
// with the directory comes at once as a *kubefoundry.ValidationError
// naming each file and the spec's path and line. Symlinks in packages,
// pre_packaging scripts and vendored packages (spec.lock) are refused.
//
// # Compiling a release
//
// Compile turns a source release into one compiled for a stemcell, on
// this machine, as a director's compilation VMs and `bosh
// export-release` make it: each packaging script runs (dependencies
// first, with BOSH_COMPILE_TARGET, BOSH_INSTALL_TARGET, BOSH_PACKAGE_NAME,
// BOSH_PACKAGE_VERSION and BOSH_PACKAGES_DIR set), its install target
// becomes compiled_packages/<name>.tgz, and jobs and the license are
// copied as they are. It is for packages that build for this machine's
// OS (Go programs, binaries copied in), as lifecycle's Kubernetes release
// is; the output is the same bytes for the same source.
//
// # Reading a release
//
// Read and Open check the whole tarball before returning: each job,
// package and license tarball against release.MF's digest (hex SHA-1 or
// "sha256:<hex>"), each job's job.MF against release.MF and its tarball's
// templates, nothing missing and nothing extra. They refuse links of
// either kind outright (wherever they point), devices, FIFOs, absolute
// names and names with "..", in the release tarball and the tarballs
// inside it, and stop at Limits (per file, in all, entries, held in
// memory) with an error wrapping kubefoundry.ErrLimitExceeded. Jobs and
// the license are held in memory; packages are listed, and ExtractPackage
// unpacks one, checking its digest again and removing what it wrote on
// failure.
//
// # Formats
//
// ParseManifest, ParseJobSpec and ParsePackageSpec are strict: an unknown
// key is a problem naming the key, and every problem comes at once with
// its ops-file style path (/jobs/name=nats/sha1, /properties/nats.port)
// and line. Versions keep the text they were written with (1.10 stays
// "1.10"). Manifest.Marshal writes release.MF in bosh-cli's key order,
// and ParseManifest(Marshal(m)) equals m. The JobSpec, Property and Link
// types are the job spec's keys, shared with job.MF and with the ERB
// renderer.
//
// # Concurrency
//
// The functions keep no state between calls and may run concurrently. A
// Release is read-only once returned and may be shared; ExtractPackage
// calls on it may run concurrently into different directories.
//
// # Files
//
//	job.go          JobSpec, Property, Link: the job spec's keys
//	spec.go         ParseJobSpec, ParsePackageSpec, their Validate
//	manifest.go     Manifest (release.MF), ParseManifest, Validate, Marshal
//	yaml.go         the strict YAML node walk the parsers share
//	fingerprint.go  Algorithm, Fingerprint: bosh-cli's fingerprint algorithm
//	glob.go         package spec globs (**, {a,b}) as bosh-cli matches them
//	create.go       Create, Option, DevVersion: a release directory to a tarball
//	tarball.go      Limits, the safe tar walk, the deterministic tar writer
//	read.go         Read, Open, Release, Job, Package, ExtractPackage
package release
