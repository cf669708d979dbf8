package discovery

import (
	"testing"

	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/utils/ptr"
)

func TestEndpointSlice(t *testing.T) {
	s := &discoveryv1.EndpointSlice{AddressType: discoveryv1.AddressTypeIPv4,
		Ports: []discoveryv1.EndpointPort{{Port: ptr.To(int32(80))}},
		Endpoints: []discoveryv1.Endpoint{{Addresses: []string{"10.0.0.1"}}, {Addresses: []string{"10.0.0.2"}},
			{Addresses: []string{"10.0.0.3"}}, {Addresses: []string{"10.0.0.4"}}}}
	EndpointSliceStrategy.Default(s)
	if *s.Ports[0].Protocol != "TCP" || *s.Ports[0].Name != "" {
		t.Errorf("port defaults: %+v", s.Ports[0])
	}
	if errs := EndpointSliceStrategy.Validate(s); len(errs) != 0 {
		t.Errorf("valid slice: %v", errs)
	}
	row := EndpointSliceStrategy.Row(s)
	if row[1] != "IPv4" || row[2] != "80" || row[3] != "10.0.0.1,10.0.0.2,10.0.0.3 + 1 more..." {
		t.Errorf("row %v", row)
	}
	if row := EndpointSliceStrategy.Row(&discoveryv1.EndpointSlice{}); row[2] != "<unset>" || row[3] != "<unset>" {
		t.Errorf("empty row %v", row)
	}
	s.AddressType = "IPv5"
	if errs := EndpointSliceStrategy.Validate(s); len(errs) != 1 || errs[0].Field != "addressType" {
		t.Errorf("bad address type: %v", errs)
	}
}
