// Package discovery describes discovery.k8s.io/v1 endpointslices.
package discovery

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/utils/ptr"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// Resources returns the discovery.k8s.io/v1 resources.
func Resources() []*registry.Resource {
	return []*registry.Resource{
		{GroupVersion: discoveryv1.SchemeGroupVersion, Resource: "endpointslices", Kind: "EndpointSlice", ListKind: "EndpointSliceList",
			SingularName: "endpointslice", Namespaced: true, Strategy: EndpointSliceStrategy},
	}
}

// EndpointSliceStrategy is the strategy of endpointslices.
var EndpointSliceStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		s := obj.(*discoveryv1.EndpointSlice)
		for i := range s.Ports {
			if s.Ports[i].Name == nil {
				s.Ports[i].Name = ptr.To("")
			}
			if s.Ports[i].Protocol == nil {
				s.Ports[i].Protocol = ptr.To(corev1.ProtocolTCP)
			}
		}
	},
	Validate: func(obj runtime.Object) field.ErrorList {
		return validateEndpointSlice(obj.(*discoveryv1.EndpointSlice))
	},
	ValidateUpdate: func(obj, old runtime.Object) field.ErrorList {
		s, o := obj.(*discoveryv1.EndpointSlice), old.(*discoveryv1.EndpointSlice)
		errs := validateEndpointSlice(s)
		if s.AddressType != o.AddressType {
			errs = append(errs, field.Invalid(field.NewPath("addressType"), s.AddressType, "field is immutable"))
		}
		return errs
	},
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "AddressType", Type: "string", Description: "addressType specifies the type of address carried by this EndpointSlice."},
		{Name: "Ports", Type: "string", Description: "ports specifies the list of network ports exposed by each endpoint in this slice."},
		{Name: "Endpoints", Type: "string", Description: "endpoints is a list of unique endpoints in this slice."},
		registry.AgeColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		s := obj.(*discoveryv1.EndpointSlice)
		return []interface{}{s.Name, string(s.AddressType), slicePorts(s.Ports), sliceEndpoints(s.Endpoints), registry.Age(s.CreationTimestamp)}
	},
}

func validateEndpointSlice(s *discoveryv1.EndpointSlice) field.ErrorList {
	var errs field.ErrorList
	types := []discoveryv1.AddressType{discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN}
	switch s.AddressType {
	case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6, discoveryv1.AddressTypeFQDN:
	case "":
		errs = append(errs, field.Required(field.NewPath("addressType"), ""))
	default:
		errs = append(errs, field.NotSupported(field.NewPath("addressType"), s.AddressType, types))
	}
	for i, ep := range s.Endpoints {
		ap := field.NewPath("endpoints").Index(i).Child("addresses")
		if len(ep.Addresses) == 0 {
			errs = append(errs, field.Required(ap, "must contain at least 1 address"))
		}
		for j, a := range ep.Addresses {
			switch s.AddressType {
			case discoveryv1.AddressTypeIPv4, discoveryv1.AddressTypeIPv6:
				errs = append(errs, utilvalidation.IsValidIP(ap.Index(j), a)...)
			case discoveryv1.AddressTypeFQDN:
				for _, msg := range utilvalidation.IsDNS1123Subdomain(a) {
					errs = append(errs, field.Invalid(ap.Index(j), a, msg))
				}
			}
		}
	}
	for i, p := range s.Ports {
		pp := field.NewPath("ports").Index(i)
		if p.Port != nil {
			for _, msg := range utilvalidation.IsValidPortNum(int(*p.Port)) {
				errs = append(errs, field.Invalid(pp.Child("port"), *p.Port, msg))
			}
		}
		if p.Name != nil && *p.Name != "" {
			for _, msg := range utilvalidation.IsDNS1123Label(*p.Name) {
				errs = append(errs, field.Invalid(pp.Child("name"), *p.Name, msg))
			}
		}
		protocols := []corev1.Protocol{corev1.ProtocolTCP, corev1.ProtocolUDP, corev1.ProtocolSCTP}
		if p.Protocol != nil && *p.Protocol != corev1.ProtocolTCP && *p.Protocol != corev1.ProtocolUDP && *p.Protocol != corev1.ProtocolSCTP {
			errs = append(errs, field.NotSupported(pp.Child("protocol"), *p.Protocol, protocols))
		}
	}
	return errs
}

const listMax = 3

func withMore(list []string, count int) string {
	ret := strings.Join(list, ",")
	if count > listMax {
		return fmt.Sprintf("%s + %d more...", ret, count-listMax)
	}
	if ret == "" {
		return "<unset>"
	}
	return ret
}

// slicePorts is the PORTS cell: port numbers (or names, or "*"), three at most.
func slicePorts(ports []discoveryv1.EndpointPort) string {
	var list []string
	for _, p := range ports {
		if len(list) == listMax {
			break
		}
		switch {
		case p.Port != nil:
			list = append(list, strconv.Itoa(int(*p.Port)))
		case p.Name != nil:
			list = append(list, *p.Name)
		default:
			list = append(list, "*")
		}
	}
	return withMore(list, len(ports))
}

func sliceEndpoints(endpoints []discoveryv1.Endpoint) string {
	var list []string
	count := 0
	for _, ep := range endpoints {
		for _, a := range ep.Addresses {
			if len(list) < listMax {
				list = append(list, a)
			}
			count++
		}
	}
	return withMore(list, count)
}
