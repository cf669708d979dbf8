package server

import (
	"errors"
	"strings"
	"testing"
)

// TestClusterDNSHost checks where the cluster DNS listens: on the node with the agent, where
// agents join without one, and nowhere (with the reason) when agents' pods could not reach it.
func TestClusterDNSHost(t *testing.T) {
	node := nodeIdentity{name: "cp", ip: "192.0.2.7"}
	noRoute := errors.New("no default route")
	for _, tc := range []struct {
		name    string
		cfg     Config
		nodeErr error
		want    string
		why     string // a part of the reason when want is ""
	}{
		{"agent: the node's address", Config{}, nil, "192.0.2.7", ""},
		{"agent on loopback: unchanged", Config{AdvertiseAddress: "127.0.0.1"}, nil, "192.0.2.7", ""},
		{"apiserver alone", Config{DisableAgent: true, DisableDNS: true, AdvertiseAddress: "192.0.2.1"}, nil, "", ""},
		{"no agent: the advertise address", Config{DisableAgent: true, AdvertiseAddress: "192.0.2.1"}, nil, "192.0.2.1", ""},
		{"no agent: the node address", Config{DisableAgent: true, BindAddress: "0.0.0.0"}, nil, "192.0.2.7", ""},
		{"no agent, loopback advertise address", Config{DisableAgent: true, AdvertiseAddress: "127.0.0.1"}, nil, "", "cannot reach a DNS server at 127.0.0.1"},
		{"no agent, loopback API server", Config{DisableAgent: true, BindAddress: "127.0.0.1"}, nil, "", "listens on loopback only"},
		{"no agent, no address", Config{DisableAgent: true}, noRoute, "", "no default route"},
		{"no agent, unspecified", Config{DisableAgent: true, AdvertiseAddress: "::"}, nil, "", "cannot reach"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, why := clusterDNSHost(tc.cfg, node, tc.nodeErr)
			if host != tc.want {
				t.Errorf("host %q (%s), want %q", host, why, tc.want)
			}
			if host == "" && !strings.Contains(why, tc.why) || host != "" && why != "" {
				t.Errorf("reason %q, want one containing %q", why, tc.why)
			}
		})
	}
}
