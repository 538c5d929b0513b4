package vspheretest

import (
	"sync/atomic"

	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vim25/mo"
)

// FaultOnce makes the model fail one call of method (a vSphere, CNS or
// SPBM method name), the one after skip others, with fault. The rule
// counts the calls itself: vcsim's own MaxCount and SkipCount are read on
// every call of any method under a read lock and written under it on a
// match, which the race detector catches when calls run at once.
func FaultOnce(m *simulator.Model, method string, fault simulator.FaultType, skip int) {
	var calls atomic.Int64
	m.Service.AddFaultRule(&simulator.FaultInjectionRule{
		MethodName: method, ObjectType: "*", ObjectName: "*", FaultType: fault, Probability: 1, Enabled: true,
		InclusionPropertyFilter: func(mo.Reference) bool { return calls.Add(1) == int64(skip)+1 },
	})
}
