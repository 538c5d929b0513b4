// Package links resolves BOSH links as the director does: which job
// provides each link every job of a deployment consumes.
//
//	l, err := links.Resolve(m, specs, nil) // specs: the releases' job specs
//	b := l.For("worker", "kubelet")["kube-apiserver"]
//	link := b.Link(instancesOf(b.Provider.Group), providerProps, "default", azIDs) // for template.Job.Links
//
// Resolution follows the director: an explicit from: names a provider by
// its alias (provides: {name: {as: alias}}); without it, the one provider
// of the consumed type in the deployment, several being an error naming
// them; deployment: other takes another deployment's shared providers;
// an optional link with no provider, or one the manifest sets to nil,
// binds to nothing (templates take if_link's else branch); a manual link
// (instances, properties, address in consumes) is taken as written.
// custom_provider_definitions add providers a job's spec does not
// declare; provides: {name: nil} withdraws one. Every problem — an
// unknown link name, a missing or ambiguous provider, a type mismatch, a
// malformed option — is reported at once at its manifest path
// (instance_groups/name=worker/jobs/name=kubelet/consumes/kube-apiserver),
// as a *kubefoundry.ValidationError.
//
// Resolve reads the manifest and specs it is given and keeps no state;
// Links is safe for concurrent reads.
//
// # Files
//
//	links.go  Resolve, Provider, Binding, Links; Binding.Link builds what a template sees
package links
