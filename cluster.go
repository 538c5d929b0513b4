package kubefoundry

import "regexp"

// ClusterID names a cluster in every system kubefoundry writes to: the
// ownership keys of its VMs, the container cluster of its CNS volumes, the
// tags and ids of its NSX objects, its Harbor projects. One rule holds for
// all of them, the strictest any backend needs (NSX object ids, DNS labels
// and Harbor project names all accept it): 1 to 40 lower-case letters,
// digits and '-', beginning and ending with a letter or digit.
//
// Check it once, before anything is created, with Validate: a cluster id
// that one layer would refuse then fails before another has made VMs.
type ClusterID string

// MaxClusterIDLen is the longest cluster id: NSX ids derived from it
// ("<id>-nodes", "<id>-ns-<namespace>") must stay within NSX's limits.
const MaxClusterIDLen = 40

var clusterIDRe = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,38}[a-z0-9])?$`)

// Validate returns a *FieldError (field "clusterID") when id breaks the rule.
func (id ClusterID) Validate() error {
	if clusterIDRe.MatchString(string(id)) {
		return nil
	}
	reason := "must be 1-40 lower-case letters, digits or '-', beginning and ending with a letter or digit"
	if id == "" {
		reason = "required; " + reason
	}
	return &FieldError{Field: "clusterID", Value: string(id), Reason: reason}
}

func (id ClusterID) String() string { return string(id) }
