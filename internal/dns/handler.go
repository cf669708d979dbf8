package dns

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"strings"

	"github.com/miekg/dns"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
)

const (
	// schemaVersion is the Kubernetes DNS specification version served at dns-version.<zone>.
	schemaVersion = "1.1.0"
	// maxCNAMEChain bounds the in-cluster ExternalName chains an answer follows.
	maxCNAMEChain = 8
	// ednsSize is the UDP payload size this server advertises (the DNS flag day 2020 value).
	ednsSize = 1232
)

// serveDNS is the miekg/dns handler for both transports.
func (s *Server) serveDNS(w dns.ResponseWriter, r *dns.Msg) {
	_, udp := w.RemoteAddr().(*net.UDPAddr)
	m := s.respond(s.baseCtx, r, udp)
	if m == nil {
		return
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns: write reply", "remote", w.RemoteAddr().String(), "err", err)
	}
}

// respond returns the reply to r, or nil when r deserves none (it is itself a response).
func (s *Server) respond(ctx context.Context, r *dns.Msg, udp bool) *dns.Msg {
	if r.Response {
		return nil
	}
	m := new(dns.Msg)
	if r.Opcode != dns.OpcodeQuery {
		m.SetRcode(r, dns.RcodeNotImplemented)
		return m
	}
	opt, opts := r.IsEdns0(), 0
	for _, rr := range r.Extra {
		if rr.Header().Rrtype == dns.TypeOPT {
			opts++
		}
	}
	if len(r.Question) != 1 || opts > 1 {
		m.SetRcodeFormatError(r)
		return m
	}
	if opt != nil && opt.Version() != 0 {
		m.SetReply(r)
		m.SetEdns0(ednsSize, opt.Do())
		m.Rcode = dns.RcodeBadVers // Pack moves the high bits into the OPT record
		return m
	}

	q := r.Question[0]
	name := strings.ToLower(q.Name)
	switch {
	case dns.IsSubDomain(s.zone, name):
		m.SetReply(r)
		m.Authoritative, m.RecursionAvailable = true, true
		if q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY || q.Qtype == dns.TypeAXFR || q.Qtype == dns.TypeIXFR {
			m.Rcode = dns.RcodeRefused
			break
		}
		a := s.lookup(q.Name, name, q.Qtype, 0)
		m.Answer, m.Extra = a.records, a.extra
		if !a.found {
			m.Rcode = dns.RcodeNameError
		}
		if !a.found || len(a.records) == 0 || a.chasedToNothing {
			m.Ns = []dns.RR{s.soa()}
		}
	case q.Qtype == dns.TypePTR && q.Qclass == dns.ClassINET && s.localPTR(m, r, q.Name, name):
		// m holds the PTR records of a Service or headless endpoint.
	default:
		resp, err := s.forward(ctx, r)
		if err != nil {
			s.log.Debug("dns: forward", "name", q.Name, "type", dns.TypeToString[q.Qtype], "err", err)
			m.SetRcode(r, dns.RcodeServerFailure)
			m.RecursionAvailable = true
			break
		}
		m = resp
		m.Id = r.Id
	}
	if opt != nil && m.IsEdns0() == nil {
		m.SetEdns0(ednsSize, opt.Do())
	}
	// A reply that does not fit is cut at a record boundary with TC set, so UDP clients retry
	// over TCP; over TCP it must still fit the 64 KiB frame.
	size := dns.MaxMsgSize
	if udp {
		size = dns.MinMsgSize
		if opt != nil {
			size = int(opt.UDPSize())
		}
	}
	m.Truncate(size)
	return m
}

// answer is the outcome of a lookup in the cluster domain.
type answer struct {
	records []dns.RR // answer section
	extra   []dns.RR // additional section: the addresses of SRV targets
	found   bool     // the name exists (NOERROR); false is NXDOMAIN
	// chasedToNothing is set when a CNAME was followed to a name without records, so the
	// reply needs an SOA for negative caching even though it has an answer.
	chasedToNothing bool
}

func (s *Server) hdr(owner string, rrtype uint16) dns.RR_Header {
	return dns.RR_Header{Name: owner, Rrtype: rrtype, Class: dns.ClassINET, Ttl: s.cfg.TTL}
}

func (s *Server) soa() dns.RR {
	return &dns.SOA{
		Hdr:     s.hdr(s.zone, dns.TypeSOA),
		Ns:      "ns.dns." + s.zone,
		Mbox:    "hostmaster." + s.zone,
		Serial:  s.cache.serial.Load(),
		Refresh: 7200,
		Retry:   1800,
		Expire:  86400,
		Minttl:  s.cfg.TTL,
	}
}

// addrRR returns ip's A or AAAA record if qtype asks for it.
func (s *Server) addrRR(owner string, qtype uint16, ip netip.Addr) dns.RR {
	switch {
	case ip.Is4() && (qtype == dns.TypeA || qtype == dns.TypeANY):
		return &dns.A{Hdr: s.hdr(owner, dns.TypeA), A: ip.AsSlice()}
	case ip.Is6() && (qtype == dns.TypeAAAA || qtype == dns.TypeANY):
		return &dns.AAAA{Hdr: s.hdr(owner, dns.TypeAAAA), AAAA: ip.AsSlice()}
	}
	return nil
}

func appendRR(rrs []dns.RR, rr dns.RR) []dns.RR {
	if rr == nil {
		return rrs
	}
	return append(rrs, rr)
}

// lookup answers name (lower case, inside the zone) for qtype; owner is name as asked.
func (s *Server) lookup(owner, name string, qtype uint16, depth int) answer {
	labels := dns.SplitDomainName(name)
	if len(labels) < s.zoneLabels {
		return answer{}
	}
	rel := labels[:len(labels)-s.zoneLabels]
	if len(rel) == 0 {
		if qtype == dns.TypeSOA || qtype == dns.TypeANY {
			return answer{records: []dns.RR{s.soa()}, found: true}
		}
		return answer{found: true}
	}
	last, rel := rel[len(rel)-1], rel[:len(rel)-1]
	switch {
	case last == "svc":
		return s.lookupService(owner, rel, qtype, depth)
	case last == "pod":
		return s.lookupPod(owner, rel, qtype)
	case last == "dns-version" && len(rel) == 0:
		a := answer{found: true}
		if qtype == dns.TypeTXT || qtype == dns.TypeANY {
			a.records = []dns.RR{&dns.TXT{Hdr: s.hdr(owner, dns.TypeTXT), Txt: []string{schemaVersion}}}
		}
		return a
	}
	return answer{}
}

// lookupService answers the names under svc.<zone>; rel holds the labels before "svc".
func (s *Server) lookupService(owner string, rel []string, qtype uint16, depth int) answer {
	n := len(rel)
	switch n {
	case 0: // svc.<zone>
		return answer{found: true}
	case 1: // <ns>.svc.<zone>
		return answer{found: s.cache.namespaceHasServices(rel[0])}
	}
	svc := s.cache.service(rel[n-1], rel[n-2])
	if svc == nil {
		return answer{}
	}
	switch n {
	case 2: // <svc>.<ns>.svc.<zone>
		return s.serviceRecords(owner, svc, qtype, depth)
	case 3: // <endpoint>.<svc>.<ns>.svc.<zone> or _<proto>.<svc>.<ns>.svc.<zone>
		if proto, ok := strings.CutPrefix(rel[0], "_"); ok {
			return answer{found: hasProtocol(svc, proto)}
		}
		if !isHeadless(svc) {
			return answer{}
		}
		return s.endpointRecords(owner, svc, rel[0], qtype)
	case 4: // _<port>._<proto>.<svc>.<ns>.svc.<zone>
		port, ok1 := strings.CutPrefix(rel[0], "_")
		proto, ok2 := strings.CutPrefix(rel[1], "_")
		if !ok1 || !ok2 || port == "" {
			return answer{}
		}
		return s.srvRecords(owner, svc, port, proto, qtype)
	}
	return answer{}
}

func (s *Server) serviceName(svc *corev1.Service) string {
	return svc.Name + "." + svc.Namespace + ".svc." + s.zone
}

// serviceRecords answers <svc>.<ns>.svc.<zone>.
func (s *Server) serviceRecords(owner string, svc *corev1.Service, qtype uint16, depth int) answer {
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName:
		target, ok := externalTarget(svc)
		if !ok {
			return answer{found: true}
		}
		a := answer{found: true, records: []dns.RR{&dns.CNAME{Hdr: s.hdr(owner, dns.TypeCNAME), Target: target}}}
		// Follow the chain while it stays in the cluster; outside, the client's resolver does.
		if qtype == dns.TypeCNAME || !dns.IsSubDomain(s.zone, target) || depth >= maxCNAMEChain {
			return a
		}
		next := s.lookup(target, target, qtype, depth+1)
		a.records = append(a.records, next.records...)
		a.extra, a.found = next.extra, next.found
		a.chasedToNothing = next.chasedToNothing || len(next.records) == 0
		return a
	case isHeadless(svc):
		a := answer{}
		seen := map[netip.Addr]bool{}
		for _, slice := range s.cache.slicesBy(byService, svc.Namespace+"/"+svc.Name) {
			if !isIPSlice(slice) {
				continue
			}
			for i := range slice.Endpoints {
				ep := &slice.Endpoints[i]
				if !endpointReady(ep) {
					continue
				}
				for _, text := range ep.Addresses {
					ip, ok := parseIP(text)
					if !ok || seen[ip] {
						continue
					}
					seen[ip] = true
					// As CoreDNS: a headless Service without ready endpoints does not exist.
					a.found = true
					a.records = appendRR(a.records, s.addrRR(owner, qtype, ip))
				}
			}
		}
		return a
	default:
		a := answer{found: true}
		for _, ip := range clusterIPs(svc) {
			a.records = appendRR(a.records, s.addrRR(owner, qtype, ip))
		}
		return a
	}
}

// endpointRecords answers <label>.<svc>.<ns>.svc.<zone> for a headless Service.
func (s *Server) endpointRecords(owner string, svc *corev1.Service, label string, qtype uint16) answer {
	a := answer{}
	key := svc.Namespace + "/" + svc.Name + "/" + label
	for _, slice := range s.cache.slicesBy(byEndpointLabel, key) {
		if !isIPSlice(slice) {
			continue
		}
		for i := range slice.Endpoints {
			ep := &slice.Endpoints[i]
			if !endpointReady(ep) {
				continue
			}
			for _, text := range ep.Addresses {
				ip, ok := parseIP(text)
				if !ok || endpointLabel(ep, ip) != label {
					continue
				}
				a.found = true
				a.records = appendUniqueRR(a.records, s.addrRR(owner, qtype, ip))
			}
		}
	}
	return a
}

// srvRecords answers _<port>._<proto>.<svc>.<ns>.svc.<zone>.
func (s *Server) srvRecords(owner string, svc *corev1.Service, port, proto string, qtype uint16) answer {
	a := answer{}
	wantSRV := qtype == dns.TypeSRV || qtype == dns.TypeANY
	switch {
	case svc.Spec.Type == corev1.ServiceTypeExternalName || !isHeadless(svc):
		for _, p := range svc.Spec.Ports {
			if p.Name != port || !protocolIs(p.Protocol, proto) {
				continue
			}
			a.found = true
			if !wantSRV {
				continue
			}
			target := s.serviceName(svc)
			if svc.Spec.Type == corev1.ServiceTypeExternalName {
				var ok bool
				if target, ok = externalTarget(svc); !ok {
					continue
				}
			} else {
				for _, ip := range clusterIPs(svc) {
					a.extra = appendUniqueRR(a.extra, s.addrRR(target, dns.TypeANY, ip))
				}
			}
			a.records = append(a.records, s.srv(owner, uint16(p.Port), target))
		}
	default:
		base := "." + s.serviceName(svc)
		seen := map[string]bool{} // targets and port numbers already answered
		for _, slice := range s.cache.slicesBy(byService, svc.Namespace+"/"+svc.Name) {
			if !isIPSlice(slice) {
				continue
			}
			number := slicePort(slice, port, proto)
			if number < 0 {
				continue
			}
			for i := range slice.Endpoints {
				ep := &slice.Endpoints[i]
				if !endpointReady(ep) {
					continue
				}
				for _, text := range ep.Addresses {
					ip, ok := parseIP(text)
					if !ok {
						continue
					}
					a.found = true
					if !wantSRV {
						continue
					}
					target := endpointLabel(ep, ip) + base
					if key := target + " " + strconv.Itoa(number); !seen[key] {
						seen[key] = true
						a.records = append(a.records, s.srv(owner, uint16(number), target))
					}
					if key := target + " " + ip.String(); !seen[key] {
						seen[key] = true
						a.extra = append(a.extra, s.addrRR(target, dns.TypeANY, ip))
					}
				}
			}
		}
	}
	// Equal priority, weights sharing 100 as CoreDNS gives them.
	if len(a.records) > 0 {
		weight := uint16(max(1, 100/len(a.records)))
		for _, rr := range a.records {
			rr.(*dns.SRV).Weight = weight
		}
	}
	return a
}

func (s *Server) srv(owner string, port uint16, target string) *dns.SRV {
	return &dns.SRV{Hdr: s.hdr(owner, dns.TypeSRV), Priority: 0, Weight: 100, Port: port, Target: target}
}

// lookupPod answers <a-b-c-d>.<ns>.pod.<zone> without checking that such a pod exists
// (CoreDNS's "pods insecure"); rel holds the labels before "pod".
func (s *Server) lookupPod(owner string, rel []string, qtype uint16) answer {
	switch len(rel) {
	case 0, 1: // pod.<zone> and <ns>.pod.<zone> are empty non-terminals
		return answer{found: true}
	case 2:
		ip, ok := podIP(rel[0])
		if !ok {
			return answer{}
		}
		return answer{found: true, records: appendRR(nil, s.addrRR(owner, qtype, ip))}
	}
	return answer{}
}

// podIP parses a dashed pod IP: "10-0-0-1" or "fd00--1".
func podIP(label string) (netip.Addr, bool) {
	if strings.Count(label, "-") == 3 && !strings.Contains(label, "--") {
		ip, err := netip.ParseAddr(strings.ReplaceAll(label, "-", "."))
		return ip, err == nil && ip.Is4()
	}
	ip, err := netip.ParseAddr(strings.ReplaceAll(label, "-", ":"))
	return ip, err == nil && ip.Is6() && ip.Zone() == ""
}

// localPTR fills m with the PTR records of the reverse name (name is lower case) and reports
// whether it did; names it does not know are left to the upstreams, as CoreDNS's
// "fallthrough in-addr.arpa ip6.arpa" does.
func (s *Server) localPTR(m, r *dns.Msg, owner, name string) bool {
	ip, ok := reverseIP(name)
	if !ok {
		return false
	}
	var targets []dns.RR
	for _, svc := range s.cache.servicesByIP(ip) {
		targets = appendUniqueRR(targets, &dns.PTR{Hdr: s.hdr(owner, dns.TypePTR), Ptr: s.serviceName(svc)})
	}
	for _, slice := range s.cache.slicesBy(byIP, ip.String()) {
		svc := s.cache.service(slice.Namespace, slice.Labels[discoveryv1.LabelServiceName])
		if svc == nil || !isHeadless(svc) || !isIPSlice(slice) {
			continue
		}
		for i := range slice.Endpoints {
			ep := &slice.Endpoints[i]
			if !endpointReady(ep) {
				continue
			}
			for _, text := range ep.Addresses {
				if a, ok := parseIP(text); ok && a == ip {
					ptr := endpointLabel(ep, ip) + "." + s.serviceName(svc)
					targets = appendUniqueRR(targets, &dns.PTR{Hdr: s.hdr(owner, dns.TypePTR), Ptr: ptr})
				}
			}
		}
	}
	if len(targets) == 0 {
		return false
	}
	m.SetReply(r)
	m.Authoritative, m.RecursionAvailable = true, true
	m.Answer = targets
	return true
}

// reverseIP parses a full in-addr.arpa or ip6.arpa name (lower case).
func reverseIP(name string) (netip.Addr, bool) {
	if v4, ok := strings.CutSuffix(name, ".in-addr.arpa."); ok {
		parts := strings.Split(v4, ".")
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		var b [4]byte
		for i, p := range parts {
			if len(p) == 0 || len(p) > 3 || (len(p) > 1 && p[0] == '0') {
				return netip.Addr{}, false
			}
			n, err := strconv.ParseUint(p, 10, 8)
			if err != nil {
				return netip.Addr{}, false
			}
			b[3-i] = byte(n)
		}
		return netip.AddrFrom4(b), true
	}
	if v6, ok := strings.CutSuffix(name, ".ip6.arpa."); ok {
		if len(v6) != 63 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i := range 32 {
			c := v6[2*i]
			if i < 31 && v6[2*i+1] != '.' {
				return netip.Addr{}, false
			}
			var nibble byte
			switch {
			case c >= '0' && c <= '9':
				nibble = c - '0'
			case c >= 'a' && c <= 'f':
				nibble = c - 'a' + 10
			default:
				return netip.Addr{}, false
			}
			// The first label is the lowest nibble of the last byte.
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= nibble << 4
			} else {
				b[pos/2] |= nibble
			}
		}
		return netip.AddrFrom16(b), true
	}
	return netip.Addr{}, false
}

// externalTarget is an ExternalName Service's CNAME target, if it is a valid name.
func externalTarget(svc *corev1.Service) (string, bool) {
	name := dns.Fqdn(strings.ToLower(svc.Spec.ExternalName))
	if name == "." {
		return "", false
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return "", false
	}
	return name, true
}

func protocolIs(p corev1.Protocol, proto string) bool {
	if p == "" {
		p = corev1.ProtocolTCP
	}
	return strings.EqualFold(string(p), proto)
}

func hasProtocol(svc *corev1.Service, proto string) bool {
	for _, p := range svc.Spec.Ports {
		if p.Name != "" && protocolIs(p.Protocol, proto) {
			return true
		}
	}
	return false
}

// slicePort is the number of the slice's port with that name and protocol, or -1.
func slicePort(slice *discoveryv1.EndpointSlice, name, proto string) int {
	for _, p := range slice.Ports {
		if p.Name == nil || *p.Name != name || p.Port == nil || *p.Port < 0 || *p.Port > 65535 {
			continue
		}
		var protocol corev1.Protocol
		if p.Protocol != nil {
			protocol = *p.Protocol
		}
		if protocolIs(protocol, proto) {
			return int(*p.Port)
		}
	}
	return -1
}

func isIPSlice(slice *discoveryv1.EndpointSlice) bool {
	return slice.AddressType == discoveryv1.AddressTypeIPv4 || slice.AddressType == discoveryv1.AddressTypeIPv6
}

// appendUniqueRR drops duplicates, which appear while an endpoint moves between slices.
func appendUniqueRR(rrs []dns.RR, rr dns.RR) []dns.RR {
	if rr == nil {
		return rrs
	}
	for _, have := range rrs {
		if dns.IsDuplicate(have, rr) {
			return rrs
		}
	}
	return append(rrs, rr)
}
