package simulator

import (
	"net/http"

	"github.com/vmware/vsphere-automation-sdk-go/services/nsxt/model"
)

// serveRealized answers GET /infra/realized-state/realized-entities with
// the realized state of one intent: REALIZED (after RealizeAfterReads
// reads), or ERROR with an alarm carrying the reason; IPAM results are
// extended attributes (cidr, gateway_address, allocation_ip).
func (s *Server) serveRealized(w http.ResponseWriter, r *http.Request) {
	intent := r.URL.Query().Get("intent_path")
	s.mu.Lock()
	o := s.st.objs[intent]
	var re realization
	if o != nil {
		re = o.realized
		if re.state == "IN_PROGRESS" {
			o.realized.reads++
			if o.realized.reads >= s.cfg.RealizeAfterReads {
				o.realized.state = "REALIZED"
			}
		}
		re.attrs = o.realized.attrs
	}
	s.mu.Unlock()
	if o == nil {
		writeError(w, errorf(http.StatusNotFound, "intent path %q does not exist", intent))
		return
	}
	state := re.state
	ent := model.GenericPolicyRealizedResource{
		Id:           strPtr(o.str("unique_id")),
		DisplayName:  strPtr(o.str("id")),
		ResourceType: strPtr("GenericPolicyRealizedResource"),
		EntityType:   strPtr(o.kind.realizedType),
		IntentPaths:  []string{o.path},
		State:        &state,
		Path:         strPtr("/infra/realized-state/enforcement-points/default/" + o.str("unique_id")),
	}
	for k, v := range re.attrs {
		ent.ExtendedAttributes = append(ent.ExtendedAttributes, model.AttributeVal{
			Key: strPtr(k), Values: []string{v}, DataType: strPtr("STRING"), Multivalue: boolPtr(false)})
	}
	if state == "ERROR" {
		msg := re.err
		ent.RuntimeError = &msg
		ent.Alarms = []model.PolicyAlarmResource{{
			Message:         &msg,
			SourceReference: strPtr(o.path),
			ErrorDetails:    &model.PolicyApiError{ErrorMessage: &msg, ErrorCode: int64Ptr(500012)},
		}}
	}
	writeModel(w, model.GenericPolicyRealizedResourceListResult{
		Results: []model.GenericPolicyRealizedResource{ent}, ResultCount: int64Ptr(1),
	}, model.GenericPolicyRealizedResourceListResultBindingType())
}

func strPtr(s string) *string { return &s }
func boolPtr(b bool) *bool    { return &b }
func int64Ptr(n int64) *int64 { return &n }
