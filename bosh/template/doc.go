// Package template renders BOSH job templates as BOSH renders them: ERB
// evaluated by Ruby, with p, if_p, link, if_link, spec and plain Ruby
// working as in real releases.
//
//	props, err := template.Properties(spec, job.Properties, group.Properties, m.Properties)
//	r := template.New()   // one Ruby process for the whole deploy
//	defer r.Close()
//	files, err := r.Render(ctx, template.Instance{Deployment: "k8s", Group: "master", Index: 0, ...},
//		[]template.Job{{Spec: spec, Templates: sources, Properties: props, Links: links}})
//
// Properties binds a job's properties as the director does: every property
// its spec declares, from the job's own properties (or the instance
// group's over the global ones when the job has none), else the spec's
// default; a property the job sets and its spec does not declare is an
// error naming its path, every one at once.
//
// Render sends every template of an instance to one long-lived Ruby
// process in a single request (`ruby` from PATH, or WithRuby; a missing
// Ruby is kubefoundry.ErrUnavailable with the package to install). The
// Ruby side (render.rb, embedded) gives templates BOSH's evaluation
// context: p(name), p(name, default), p([names...]), if_p(...).else,
// link(name).instances / .p / .if_p / .address(azs:, status:),
// if_link(name).else, spec.name / id / index / az / bootstrap / address /
// ip / deployment / networks.<net>.ip / job.name / release, name, index and
// properties, with BOSH's error messages ("Can't find property
// '[\"a.b\"]'", "Can't find link 'db'"). A template that raises does not
// stop the others; each failure is a *TemplateError naming the job, the
// template, the Ruby error and its line. What a template prints goes to
// the process's stderr, never into the output. Templates of one process
// share a Ruby interpreter, so a template that redefines a Ruby class
// affects the templates rendered after it (bosh-cli's create-env starts
// a process per template; the director shares one process too).
//
// A Renderer is safe for concurrent use: renders are serialised on its
// process. Cancelling a Render's ctx kills the process (a template that
// never ends cannot hang a deploy); the next Render starts a new one, and
// Processes counts them.
//
// # Files
//
//	template.go    Instance, Job, Link, File, TemplateError; the spec a template sees
//	properties.go  Properties: the director's property binding
//	renderer.go    Renderer: the Ruby process and its line protocol
//	render.rb      the Ruby side: BOSH's evaluation context
package template
