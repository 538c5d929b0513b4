package simulator

func init() {
	handlers["getPing"] = getPing
	handlers["getSystemInfo"] = getSystemInfo
}

func getPing(*Server, *call) (reply, error) { return reply{body: []byte(`"Pong"`)}, nil }

func getSystemInfo(_ *Server, _ *call) (reply, error) {
	return reply{body: map[string]any{"harbor_version": "v2.13.1-simulator", "auth_mode": "db_auth",
		"self_registration": false, "has_ca_root": false, "primary_auth_mode": false}}, nil
}
