package apiserver_test

import (
	"slices"
	"testing"

	"github.com/nanokube/nanokube/internal/apiserver"
)

func TestParseAuthorizationModes(t *testing.T) {
	for _, tc := range []struct {
		value string
		want  []string
		err   string
	}{
		{"", []string{"Node", "RBAC"}, ""},
		{"Node,RBAC", []string{"Node", "RBAC"}, ""},
		{"RBAC", []string{"RBAC"}, ""},
		{"AlwaysAllow", []string{"AlwaysAllow"}, ""},
		{"RBAC, Node", []string{"RBAC", "Node"}, ""},
		{"Node,Webhook", nil, `authorization-mode "Webhook" is not a valid mode: want a comma list of Node, RBAC and AlwaysAllow`},
		{"rbac", nil, `authorization-mode "rbac" is not a valid mode: want a comma list of Node, RBAC and AlwaysAllow`},
		{"RBAC,RBAC", nil, `authorization-mode "RBAC,RBAC" has mode specified more than once`},
	} {
		got, err := apiserver.ParseAuthorizationModes(tc.value)
		if tc.err != "" {
			if err == nil || err.Error() != tc.err {
				t.Errorf("%q: error %v, want %s", tc.value, err, tc.err)
			}
			continue
		}
		if err != nil || !slices.Equal(got, tc.want) {
			t.Errorf("%q: got %v %v, want %v", tc.value, got, err, tc.want)
		}
	}
}
