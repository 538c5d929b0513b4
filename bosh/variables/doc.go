// Package variables is a deployment's variables store, as the director's
// config server (CredHub) keeps them: it generates what a manifest's
// variables section declares and keeps it, converges it when asked,
// rotates CAs, and is what bosh/opsfile.Interpolate reads ((variables))
// from.
//
//	s, err := variables.Open(filepath.Join(stateDir, "vars.json")) // or OpenBackend(be): any Backend keeping bytes
//	err = s.Generate(m.Variables) // what is not there yet, and what converges
//	err = opsfile.Interpolate(doc, s)
//
//	// Rotate a CA without downtime, deploying after each step:
//	err = s.RotateCA("kubo_ca")                // 1: new CA trusted beside the old
//	regenerated, err := s.PromoteCA("kubo_ca") // 2: new CA signs; its leaves regenerated
//	err = s.DropTransitional("kubo_ca")        // 3: only the new CA remains
//
// Types, as BOSH generates them: password (options.length, 20 by
// default, lower-case letters and digits); user ({username, password});
// rsa ({private_key, public_key}, 2048 bits); ssh ({private_key,
// public_key in authorized_keys form, public_key_fingerprint as MD5});
// certificate ({ca, certificate, private_key}: options is_ca, ca (the
// variable of the CA that signs it, generated first), common_name,
// organization (the subject's, as CredHub's option; "kubefoundry" when
// absent: Kubernetes reads a client certificate's groups from it),
// alternative_names (IPs and DNS names), extended_key_usage (server_auth,
// client_auth), duration in days, 365 by default). Every problem is
// reported at once at its /variables/name=... path (a missing or circular
// CA, an unknown type or update_mode, a bad length, a value put of the
// wrong shape); what can be generated still is.
//
// Update modes (update_mode), as BOSH hands them to CredHub: by default
// (no-overwrite) a value there is kept even when the manifest's options
// changed; converge regenerates a generated value whose type or options
// differ from those it was generated with, or a certificate whose CA's
// active version is not the one that signed it; overwrite regenerates on
// every Generate. A value given with Put is never regenerated: BOSH does
// not replace what it did not generate. Put checks a value against the
// type the store knows for the name, and Generate against the declared
// type: a password is a non-empty string; a user has username and
// password; rsa and ssh have private_key and public_key; a certificate has
// ca, certificate and private_key in PEM, the key being the
// certificate's.
//
// CA rotation follows CredHub's transitional versions. RotateCA keeps a
// new CA, generated with the same options, as the transitional version;
// ((ca.ca)), ((ca.certificate)) and ((leaf.ca)) of every certificate the
// store generated with options.ca ca are then the PEM bundle of both,
// the active CA first (CredHub's order with concatenate_cas; the first
// block is the one private_key belongs to). PromoteCA makes the new CA
// the active one, the old one transitional (the bundle's second), and
// regenerates at once every generated certificate under the CA (down
// through intermediate CAs) with its own options; it returns their
// names. DropTransitional removes the old CA. Each step does nothing when
// already done, and fails naming the variable when out of order or when
// the name is not a CA the store generated (RotationPhase says where a
// CA stands). Expiring lists the certificate versions that end within a
// time, each with the CA that signed it, as tkgi's "certificates
// expiring within N days" does.
//
// The store is a JSON file, mode 0600, written whole (through a temporary
// file, synced, and a rename) on every change; a change that cannot be
// written is undone in memory too. A variable keeps its active version
// and, during a rotation, its transitional one; older versions are not
// kept. The file records how each value came to be (generated or put),
// the options it was generated with, and which CA version signed it. A
// store of the first format (a bare object of name -> value) opens as
// is, and the next Generate takes the values it declares as generated
// with the options declared then. String never shows a value. A Store is
// safe for concurrent use.
//
// Not here yet: names from links (consumes), regenerating a single
// variable on demand (CredHub's regenerate of a leaf), the
// no-downtime rotation of a certificate given with Put, and keeping
// versions past the transitional one.
//
// # Files
//
//	variables.go  Store: Open (and the first format's migration), Get (the CA bundles), Put, the file and its atomic write
//	generate.go   Generate: update modes and converge; the generators
//	rotation.go   RotateCA, PromoteCA, DropTransitional, RotationPhase
//	shape.go      the shape of each type's value, checked on Put and Generate; PEM parsing
//	expiry.go     Expiring: certificates that end within a time
package variables
