// Package variables is a deployment's variables store, as the director's
// config server keeps them: it generates what a manifest's variables
// section declares and keeps it, and it is what bosh/opsfile.Interpolate
// reads ((variables)) from.
//
//	s, err := variables.Open(filepath.Join(stateDir, "vars.json"))
//	err = s.Generate(m.Variables) // only what is not there yet
//	err = opsfile.Interpolate(doc, s)
//
// Types, as BOSH generates them: password (options.length, 20 by
// default, lower-case letters and digits); user ({username, password});
// rsa ({private_key, public_key}, 2048 bits); ssh ({private_key,
// public_key in authorized_keys form, public_key_fingerprint as MD5});
// certificate ({ca, certificate, private_key}: options is_ca, ca (the
// variable of the CA that signs it, generated first), common_name,
// alternative_names (IPs and DNS names), extended_key_usage (server_auth,
// client_auth), duration in days, 365 by default). A value already there,
// generated or given with Put, is kept. Every problem is reported at once
// at its /variables/name=... path (a missing or circular CA, an unknown
// type, a bad length); what can be generated still is.
//
// The store is a JSON file, mode 0600, written whole (through a temporary
// file and a rename) on every change. String never shows a value. A Store
// is safe for concurrent use.
//
// Not here yet: certificate rotation (a new CA beside the old one until
// told to drop it), converge (update_mode), and names from links
// (consumes).
//
// # Files
//
//	variables.go  Store: Open, Get, Put, Generate, and the generators
package variables
