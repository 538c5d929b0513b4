// Package stemcell reads and writes BOSH stemcell tarballs: stemcell.MF
// (name, version, bosh_protocol, api_version, sha1, operating_system,
// stemcell_formats, cloud_properties) and the image it describes.
//
//	sc, err := stemcell.Read("bosh-stemcell.tgz", dir) // unpacks the image into dir, checks its digest
//	cid, err := cpi.CreateStemcell(ctx, sc.ImagePath, sc.Manifest.CloudProperties)
//
// Read refuses anything but plain files at the top of the tarball
// (traversal, links), bounds what it unpacks, and checks the image
// against stemcell.MF's digest (SHA-1, or sha256: prefixed). ParseManifest
// reports every problem at once as a *kubefoundry.ValidationError, an
// unknown key by name; an unquoted version keeps the digits it was written
// with (1.10 stays "1.10"). CreateLight makes a light vSphere stemcell
// from an OVF and its disks, for the simulator and tests.
//
// # Files
//
//	stemcell.go  Manifest, ParseManifest, Read, CreateLight
package stemcell
