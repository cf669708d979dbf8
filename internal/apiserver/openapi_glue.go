package apiserver

import (
	"net/http"

	"github.com/nanokube/nanokube/internal/apiserver/openapi"
	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

func newOpenAPI(resources []*registry.Resource) (http.Handler, error) {
	return openapi.New(resources)
}
