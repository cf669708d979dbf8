package core

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilvalidation "k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// EndpointsStrategy is the strategy of endpoints.
var EndpointsStrategy = registry.Strategy{
	Default: func(obj runtime.Object) {
		ep := obj.(*corev1.Endpoints)
		for i := range ep.Subsets {
			for j := range ep.Subsets[i].Ports {
				if ep.Subsets[i].Ports[j].Protocol == "" {
					ep.Subsets[i].Ports[j].Protocol = corev1.ProtocolTCP
				}
			}
		}
	},
	Validate:       func(obj runtime.Object) field.ErrorList { return validateEndpoints(obj.(*corev1.Endpoints)) },
	ValidateUpdate: func(obj, _ runtime.Object) field.ErrorList { return validateEndpoints(obj.(*corev1.Endpoints)) },
	Columns: []metav1.TableColumnDefinition{
		registry.NameColumn,
		{Name: "Endpoints", Type: "string", Description: "The set of all endpoints is the union of all subsets."},
		registry.AgeColumn,
	},
	Row: func(obj runtime.Object) []interface{} {
		ep := obj.(*corev1.Endpoints)
		return []interface{}{ep.Name, formatEndpoints(ep), registry.Age(ep.CreationTimestamp)}
	},
}

func validateEndpoints(ep *corev1.Endpoints) field.ErrorList {
	var errs field.ErrorList
	for i, ss := range ep.Subsets {
		sp := field.NewPath("subsets").Index(i)
		for j, a := range ss.Addresses {
			errs = append(errs, utilvalidation.IsValidIP(sp.Child("addresses").Index(j).Child("ip"), a.IP)...)
		}
		for j, a := range ss.NotReadyAddresses {
			errs = append(errs, utilvalidation.IsValidIP(sp.Child("notReadyAddresses").Index(j).Child("ip"), a.IP)...)
		}
		for j, p := range ss.Ports {
			pp := sp.Child("ports").Index(j)
			if len(ss.Ports) > 1 && p.Name == "" {
				errs = append(errs, field.Required(pp.Child("name"), ""))
			} else if p.Name != "" {
				for _, msg := range utilvalidation.IsDNS1123Label(p.Name) {
					errs = append(errs, field.Invalid(pp.Child("name"), p.Name, msg))
				}
			}
			for _, msg := range utilvalidation.IsValidPortNum(int(p.Port)) {
				errs = append(errs, field.Invalid(pp.Child("port"), p.Port, msg))
			}
			if !supported(p.Protocol, supportedProtocols) {
				errs = append(errs, field.NotSupported(pp.Child("protocol"), p.Protocol, supportedProtocols))
			}
		}
	}
	return errs
}

// formatEndpoints is the ENDPOINTS cell: up to three "ip:port" then "+ N more...".
func formatEndpoints(ep *corev1.Endpoints) string {
	if len(ep.Subsets) == 0 {
		return "<none>"
	}
	const max = 3
	var list []string
	count := 0
	add := func(s string) {
		if len(list) < max {
			list = append(list, s)
		}
		count++
	}
	for _, ss := range ep.Subsets {
		if len(ss.Ports) == 0 { // headless services with no ports
			for _, a := range ss.Addresses {
				add(a.IP)
			}
			continue
		}
		for _, p := range ss.Ports {
			for _, a := range ss.Addresses {
				add(net.JoinHostPort(a.IP, strconv.Itoa(int(p.Port))))
			}
		}
	}
	ret := strings.Join(list, ",")
	if count > max {
		return fmt.Sprintf("%s + %d more...", ret, count-max)
	}
	return ret
}
