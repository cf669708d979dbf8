package dns

import (
	"context"
	"encoding/binary"
	"net"
	"testing"

	"github.com/miekg/dns"
)

// recorder is a dns.ResponseWriter that keeps the packed reply.
type recorder struct {
	udp   bool
	reply []byte
	err   error
	n     int // replies written
}

func (r *recorder) LocalAddr() net.Addr { return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 53} }
func (r *recorder) RemoteAddr() net.Addr {
	if r.udp {
		return &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
	}
	return &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2), Port: 40000}
}
func (r *recorder) WriteMsg(m *dns.Msg) error {
	r.n++
	r.reply, r.err = m.Pack()
	return r.err
}
func (r *recorder) Write(b []byte) (int, error) { r.n++; r.reply = b; return len(b), nil }
func (r *recorder) Close() error                { return nil }
func (r *recorder) TsigStatus() error           { return nil }
func (r *recorder) TsigTimersOnly(bool)         {}
func (r *recorder) Hijack()                     {}

// servePacket does with one packet what miekg/dns's server does before and after the
// handler: read the header, apply DefaultMsgAcceptFunc, unpack, answer FORMERR/NOTIMP where
// the header allows and drop the packet otherwise.
func servePacket(s *Server, w *recorder, packet []byte) {
	if len(packet) < 12 {
		return // no header: miekg/dns drops it
	}
	dh := dns.Header{
		Id:      binary.BigEndian.Uint16(packet[0:]),
		Bits:    binary.BigEndian.Uint16(packet[2:]),
		Qdcount: binary.BigEndian.Uint16(packet[4:]),
		Ancount: binary.BigEndian.Uint16(packet[6:]),
		Nscount: binary.BigEndian.Uint16(packet[8:]),
		Arcount: binary.BigEndian.Uint16(packet[10:]),
	}
	req := new(dns.Msg)
	action := dns.DefaultMsgAcceptFunc(dh)
	if action == dns.MsgAccept {
		if err := req.Unpack(packet); err == nil {
			s.serveDNS(w, req)
			return
		}
	}
	if action == dns.MsgIgnore {
		return
	}
	reply := new(dns.Msg)
	reply.Id = dh.Id
	reply.Response = true
	reply.Rcode = dns.RcodeFormatError
	if action == dns.MsgRejectNotImplemented {
		reply.Opcode, reply.Rcode = int(dh.Bits>>11)&0xF, dns.RcodeNotImplemented
	}
	_ = w.WriteMsg(reply)
}

func FuzzServeDNS(f *testing.F) {
	s, _ := newTestServer(f, fixtures()...)
	// Forwarded queries get the question back with one record, through the same path a real
	// upstream's answer takes.
	s.forward = func(_ context.Context, r *dns.Msg) (*dns.Msg, error) {
		if r.Question[0].Qtype == dns.TypeTXT {
			return nil, context.DeadlineExceeded
		}
		m := new(dns.Msg)
		m.SetReply(r)
		m.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: r.Question[0].Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 1},
			A: net.IPv4(192, 0, 2, 1)}}
		return m, nil
	}

	seed := func(name string, qtype uint16, edns bool) {
		m := query(name, qtype)
		if edns {
			m.SetEdns0(1232, true)
		}
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, q := range []struct {
		name  string
		qtype uint16
	}{
		{"kubernetes.default.svc.cluster.local.", dns.TypeA},
		{"web.ns1.svc.cluster.local.", dns.TypeAAAA},
		{"web.ns1.svc.cluster.local.", dns.TypeANY},
		{"db.ns1.svc.cluster.local.", dns.TypeA},
		{"db-0.db.ns1.svc.cluster.local.", dns.TypeA},
		{"10-1-0-8.db.ns1.svc.cluster.local.", dns.TypeA},
		{"_mysql._tcp.db.ns1.svc.cluster.local.", dns.TypeSRV},
		{"_https._tcp.kubernetes.default.svc.cluster.local.", dns.TypeSRV},
		{"alias.ns1.svc.cluster.local.", dns.TypeA},
		{"loop.ns1.svc.cluster.local.", dns.TypeA},
		{"ext.ns1.svc.cluster.local.", dns.TypeCNAME},
		{"10-2-3-4.ns1.pod.cluster.local.", dns.TypeA},
		{"fd00--1.ns1.pod.cluster.local.", dns.TypeAAAA},
		{"cluster.local.", dns.TypeSOA},
		{"dns-version.cluster.local.", dns.TypeTXT},
		{"1.0.96.10.in-addr.arpa.", dns.TypePTR},
		{"8.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR},
		{"kubernetes.default.svc.cluster.local.default.svc.cluster.local.", dns.TypeA},
		{"example.org.", dns.TypeA},
		{"example.org.", dns.TypeTXT},
	} {
		seed(q.name, q.qtype, false)
		seed(q.name, q.qtype, true)
	}
	f.Add([]byte{})
	f.Add(make([]byte, 12))

	f.Fuzz(func(t *testing.T, packet []byte) {
		for _, udp := range []bool{true, false} {
			w := &recorder{udp: udp}
			servePacket(s, w, packet)
			if w.n == 0 {
				continue
			}
			if w.n > 1 || w.err != nil {
				t.Fatalf("udp=%v: %d replies, pack error %v", udp, w.n, w.err)
			}
			reply := new(dns.Msg)
			if err := reply.Unpack(w.reply); err != nil {
				t.Fatalf("udp=%v: reply does not unpack: %v", udp, err)
			}
			if !reply.Response || reply.Id != binary.BigEndian.Uint16(packet) {
				t.Fatalf("udp=%v: reply is not a response to the query: %v", udp, reply)
			}
			if limit := dns.MinMsgSize; udp && len(w.reply) > limit {
				req := new(dns.Msg)
				if req.Unpack(packet) == nil && req.IsEdns0() != nil {
					limit = max(limit, int(req.IsEdns0().UDPSize()))
				}
				if len(w.reply) > limit {
					t.Fatalf("UDP reply of %d bytes exceeds the client's %d", len(w.reply), limit)
				}
			}
		}
	})
}
