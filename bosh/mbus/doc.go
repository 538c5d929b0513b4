// Package mbus is kubefoundry's BOSH message bus: an embedded NATS server
// with TLS and per-agent authorization, and BOSH's agent wire protocol as
// both the director and the agent speak it, so that a real BOSH agent and
// kubefoundry's director understand each other. The agent's methods
// (apply, get_state, ...) and the director that calls them live in other
// packages; this one carries the messages.
//
//	bus, err := mbus.StartBus(ctx, mbus.BusConfig{})            // 127.0.0.1, any free port, new CA
//	defer bus.Close()
//	creds, err := bus.AddAgent(agentID)                          // at any time: no restart
//	agent, err := mbus.StartServer(ctx, mbus.ServerConfig{URL: bus.URL(), AgentID: agentID, Credentials: creds},
//		mbus.Methods{"get_state": {Func: getState}, "apply": {Func: apply, LongRunning: true}})
//	defer agent.Close()
//	director, err := mbus.Dial(ctx, mbus.Config{URL: bus.URL(), Credentials: bus.DirectorCredentials()})
//	defer director.Close()
//	state, err := director.Call(ctx, agentID, "get_state", "full") // json.RawMessage
//	_, err = director.Call(ctx, agentID, "apply", spec)            // polls get_task until done
//	err = director.Heartbeats(ctx, func(id string, hb mbus.Heartbeat) { ... })
//
// # Subjects and messages
//
//	agent.<agent-id>                           director -> agent: Request
//	    {"protocol": 3, "method": "...", "arguments": [...], "reply_to": "director.<director-id>.<agent-id>.<request-id>"}
//	director.<director-id>.<agent-id>.<req>    agent -> director: Response
//	    {"value": ...} or {"exception": {"message": "..."}}
//	    a long-running method's value: {"agent_task_id": "...", "state": "running"} (TaskValue);
//	    get_task [id] answers the same while it runs, then the method's own value or
//	    the exception "Action Failed get_task: Task <id> result: <error>";
//	    cancel_task [id] answers "canceled"; for an unknown id both answer
//	    "Action Failed <get_task|cancel_task>: Task with id <id> could not be found"
//	hm.agent.heartbeat.<agent-id>              agent -> health monitor: Heartbeat
//	    {"deployment", "job", "index", "job_state", "vitals": {"cpu": {"sys","user","wait"},
//	     "mem": {"kb","percent"}, "swap": {...}, "load": ["0.09","0.04","0.01"],
//	     "disk": {"system"|"ephemeral"|"persistent": {"percent","inode_percent"}}, "uptime": {"secs"}},
//	     "node_id", "number_of_processes"}   (vitals are strings, as the agent sends them)
//	hm.agent.alert.<agent-id>                  agent -> health monitor: Alert
//	    {"id", "severity", "title", "summary", "created_at"}
//	hm.agent.shutdown.<agent-id>               agent -> health monitor (Server.Send)
//
// The messages are the real agent's. An answer whose JSON exceeds 1 MiB
// or the bus's max payload is replaced, as the real agent does, by an
// exception: an exception message is cut in the middle
// ("...[truncated]...", head and tail kept), a value becomes "Response
// exceeded maximum allowed length". An unknown method is the exception
// "unknown message <method>", a failed one "Action Failed <method>:
// <error>". A request without reply_to is dropped unanswered; missing or
// null arguments are an empty array.
//
// Where this package differs from BOSH, on purpose: the agent forgets a
// finished task ServerConfig.TaskRetention (10 minutes) after it ended,
// where the real agent keeps it until it restarts; an answer larger than
// the bus's max payload is refused like one over 1 MiB, where the real
// agent would fail to publish it; a value that does not encode is an
// exception, where the real agent sends nothing; the director polls only
// an answer whose state is "running" and that names a task, where BOSH's
// polls any answer that names one (the real agent names a task only while
// it runs); and only get_task, not get_state, is sent again after a
// timeout (the director that calls get_state decides).
//
// # Security
//
// The embedded bus listens on loopback only and requires TLS with a client
// certificate from its CA. The DNS name in the certificate is the NATS
// user (verify_and_map): director.bosh-internal may publish agent.> and
// subscribe director.> and hm.>; <id>.agent.bosh-internal may subscribe
// only agent.<id> and publish only director.*.<id>.* and hm.agent.*.<id>,
// so an agent can neither read another's requests, answer for it, nor
// speak for it to the health monitor. Certificates were chosen over
// per-agent passwords because BOSH's own NATS authenticates agents by
// certificate, the identity cannot be replayed from a log or a settings
// file, and the same names work on an external NATS configured with
// verify_and_map. AddAgent and RemoveAgent reload the running server's
// users (nats-server's ReloadOptions): existing connections stay, a
// removed agent's are closed. Client and Server connect to any NATS by
// URL with the same Credentials; String and GoString of Config,
// ServerConfig and Credentials hide the key and a password in the URL, and
// the embedded server logs (to the WithLogger logger) without its debug
// and trace output, which would show every message.
// A Client takes as a call's answer only a message on that call's own
// reply subject, which names the agent asked, so an agent that learnt
// another's request id still cannot answer for it.
//
// # Errors
//
// An agent's exception is an *AgentError (agent, method, message). An
// agent that does not answer within Config.CallTimeout is a
// *kubefoundry.TimeoutError (errors.Is ErrTimeout) whose Host names the
// agent and whose Op is the method; get_task is sent again twice after a
// timeout, as BOSH's director does. A Call returns as soon as its ctx
// ends, with ctx's error; a task it started, or that the first answer
// names when it comes later, is cancelled (cancel_task). Bad
// configuration is a *kubefoundry.ValidationError listing every problem.
// Credentials that the bus maps to a user who may not subscribe where Dial
// or StartServer must fail there (nats.ErrPermissionViolation).
//
// # Reconnecting
//
// A Client or Server whose connection drops reconnects, however long the
// bus is away, until it is closed; subscriptions come back with it. An
// answer sent while the director is away is lost, as on any NATS: a
// get_task is then sent again, a first answer makes the call time out. The
// director never queues a request while it is disconnected: a Call waits
// up to CallTimeout for the connection, then fails with a
// *kubefoundry.TimeoutError of StageConnect whose Host is the bus (errors.Is
// ErrTimeout and ErrUnavailable), and the request is not sent later, when
// nobody waits for it.
//
// # Concurrency
//
// Bus, Client and Server are safe for concurrent use. A Client runs any
// number of calls over one connection; a Server serves each request in
// its own goroutine, and Close cancels running tasks and in-flight
// requests (their ctx ends), answers those requests and waits for every
// method to return, so a Method must honour its ctx. Every ctx may lack a
// deadline; waits for the bus are then bounded by 10 s.
// Heartbeats and Alerts callbacks run on one goroutine per subscription,
// in order, until ctx ends or the Client closes.
//
// # Files
//
//	wire.go    Request, Response, TaskValue, Heartbeat, Vitals, Alert; subjects; ValidateAgentID
//	pki.go     CA (generate, load, issue) and Credentials (client TLS)
//	bus.go     Bus: the embedded NATS server, its TLS, users and permissions; AddAgent/RemoveAgent
//	conn.go    Option, WithLogger, connecting to a NATS URL (reconnects), flush, URL redaction
//	client.go  Client (director): Call with task polling, sending only while connected, CancelTask,
//	           Heartbeats, Alerts; AgentError
//	server.go  Server (agent): Handler, Methods, dispatch, tasks (get_task, cancel_task), answer size, Send
package mbus
