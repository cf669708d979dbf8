package apiserver

import (
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"

	"github.com/nanokube/nanokube/internal/storage"
)

// output is what a response is encoded as: a serializer and, for Table and metadata-only
// requests, the kind the objects are transformed into.
type output struct {
	info runtime.SerializerInfo
	as   string // "", "Table", "PartialObjectMetadata", "PartialObjectMetadataList"
}

// negotiate picks the response encoding from the Accept header, as kube-apiserver does:
// the first acceptable media type wins; "as=" transformations are honoured for meta.k8s.io/v1.
func (c *codecs) negotiate(accept string) (output, error) {
	if strings.TrimSpace(accept) == "" {
		accept = "application/json"
	}
	for _, part := range strings.Split(accept, ",") {
		mt, params, err := mime.ParseMediaType(strings.TrimSpace(part))
		if err != nil {
			continue
		}
		if mt == "*/*" || mt == "application/*" {
			mt = runtime.ContentTypeJSON
		}
		var out output
		found := false
		for _, info := range c.factory.SupportedMediaTypes() {
			if info.MediaType == mt {
				out.info, found = info, true
				break
			}
		}
		if !found {
			continue
		}
		if as := params["as"]; as != "" {
			if params["g"] != metav1.GroupName || params["v"] != "v1" {
				continue
			}
			switch as {
			case "Table", "PartialObjectMetadata", "PartialObjectMetadataList":
				out.as = as
			default:
				continue
			}
		}
		return out, nil
	}
	return output{}, apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", schema.GroupResource{}, "", fmt.Sprintf("only the following media types are accepted: %s", strings.Join(c.mediaTypes(), ", ")), 0, false)
}

func (c *codecs) mediaTypes() []string {
	var out []string
	for _, info := range c.factory.SupportedMediaTypes() {
		out = append(out, info.MediaType)
	}
	return out
}

// decoderFor returns the decoder for a request body's Content-Type; strict decoders report
// unknown and duplicate fields as strict decoding errors.
func (c *codecs) decoderFor(contentType string, strict bool) (runtime.Decoder, string, error) {
	if contentType == "" {
		contentType = runtime.ContentTypeJSON
	}
	mt, _, err := mime.ParseMediaType(contentType)
	if err != nil {
		return nil, "", unsupportedMediaType(contentType)
	}
	switch mt {
	case runtime.ContentTypeJSON:
		if strict {
			return c.strict, mt, nil
		}
	case runtime.ContentTypeYAML:
		if strict {
			return c.strictYAML, mt, nil
		}
	}
	for _, info := range c.factory.SupportedMediaTypes() {
		if info.MediaType == mt {
			return info.Serializer, mt, nil
		}
	}
	return nil, "", unsupportedMediaType(contentType)
}

// writeObject encodes obj (which must carry its kind and apiVersion) with the negotiated
// serializer.
func writeObject(w http.ResponseWriter, out output, code int, obj runtime.Object) {
	w.Header().Set("Content-Type", out.info.MediaType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_ = out.info.Serializer.Encode(obj, w)
}

// toStatus turns any error into a Kubernetes Status error: API errors pass through, storage
// errors get their Kubernetes meaning, anything else is a 500.
func toStatus(err error, gr schema.GroupResource, name string) *apierrors.StatusError {
	var se *apierrors.StatusError
	if errors.As(err, &se) {
		return se
	}
	if st, ok := err.(apierrors.APIStatus); ok {
		return &apierrors.StatusError{ErrStatus: st.Status()}
	}
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return apierrors.NewNotFound(gr, name)
	case errors.Is(err, storage.ErrExists):
		return apierrors.NewAlreadyExists(gr, name)
	case errors.Is(err, storage.ErrConflict):
		return apierrors.NewConflict(gr, name, errors.New(conflictMessage))
	case errors.Is(err, storage.ErrExpired):
		return apierrors.NewResourceExpired(err.Error())
	case errors.Is(err, storage.ErrTimeout):
		return apierrors.NewTimeoutError(err.Error(), 1)
	}
	return apierrors.NewInternalError(err)
}

const conflictMessage = "the object has been modified; please apply your changes to the latest version and try again"

// writeError writes err as a Status, in JSON unless the client asked for protobuf.
func (c *codecs) writeError(w http.ResponseWriter, r *http.Request, err error, gr schema.GroupResource, name string) {
	se := toStatus(err, gr, name)
	st := se.ErrStatus
	st.Kind, st.APIVersion = "Status", "v1"
	out, nerr := c.negotiate(r.Header.Get("Accept"))
	if nerr != nil || out.as != "" {
		out, _ = c.negotiate(runtime.ContentTypeJSON)
	}
	code := int(st.Code)
	if code == 0 {
		code = http.StatusInternalServerError
	}
	writeObject(w, out, code, &st)
}

func unsupportedMediaType(ct string) error {
	return apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "", schema.GroupResource{}, "",
		fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s", strings.Join([]string{runtime.ContentTypeJSON, runtime.ContentTypeYAML, runtime.ContentTypeProtobuf}, ", ")), 0, false)
}
