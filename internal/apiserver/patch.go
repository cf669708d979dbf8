package apiserver

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"

	jsonpatch "gopkg.in/evanphx/json-patch.v4"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/strategicpatch"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"sigs.k8s.io/yaml"
)

// patch applies a JSON, merge, strategic-merge or server-side-apply patch.
func (s *Server) patch(ctx context.Context, w http.ResponseWriter, r *http.Request, rs *resourceStore, req request) (runtime.Object, bool, error) {
	opts, err := writeOptionsFrom(r)
	if err != nil {
		return nil, false, err
	}
	ct, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil {
		ct = r.Header.Get("Content-Type")
	}
	pt := types.PatchType(ct)
	switch pt {
	case types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType, types.ApplyYAMLPatchType:
	default:
		return nil, false, unsupportedPatch(ct)
	}
	data, err := readBody(r)
	if err != nil {
		return nil, false, err
	}
	force := isTrue(r.URL.Query().Get("force"))
	if pt == types.ApplyYAMLPatchType {
		if r.URL.Query().Get("fieldManager") == "" {
			return nil, false, invalidPatchOptions(field.Required(field.NewPath("fieldManager"), "is required for apply patch"))
		}
		return s.apply(ctx, w, r, rs, req, opts, data, force)
	}
	if force {
		return nil, false, invalidPatchOptions(field.Forbidden(field.NewPath("force"), "may not be specified for non-apply patch"))
	}
	out, err := s.updateObject(ctx, rs, req, opts, func(cur runtime.Object) (runtime.Object, error) {
		return s.applyPatch(w, r, rs, pt, data, cur)
	})
	return out, false, err
}

func unsupportedPatch(ct string) error {
	return apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "", schema.GroupResource{}, "",
		fmt.Sprintf("the body of the request was in an unknown format - accepted media types include: %s, %s, %s, %s (got %q)",
			types.JSONPatchType, types.MergePatchType, types.StrategicMergePatchType, types.ApplyYAMLPatchType, ct), 0, false)
}

func invalidPatchOptions(err *field.Error) error {
	return apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "PatchOptions"}, "", field.ErrorList{err})
}

// applyPatch patches cur (a private copy). A resourceVersion in the result comes from the
// patch itself and is then a precondition.
func (s *Server) applyPatch(w http.ResponseWriter, r *http.Request, rs *resourceStore, pt types.PatchType, data []byte, cur runtime.Object) (runtime.Object, error) {
	m, _ := meta.Accessor(cur)
	m.SetResourceVersion("")
	m.SetManagedFields(nil) // never part of a patch's input; the field manager keeps them
	original, err := runtime.Encode(s.codecs.factory.LegacyCodec(rs.res.GroupVersion), cur)
	if err != nil {
		return nil, apierrors.NewInternalError(err)
	}
	var patched []byte
	switch pt {
	case types.JSONPatchType:
		p, err := jsonpatch.DecodePatch(data)
		if err != nil {
			return nil, badRequest("the JSON patch is malformed: %v", err)
		}
		if patched, err = applyJSONPatch(p, original); err != nil {
			return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", rs.gr, m.GetName(), "the JSON patch could not be applied: "+err.Error(), 0, false)
		}
	case types.MergePatchType:
		if !json.Valid(data) {
			return nil, badRequest("the merge patch is not valid JSON")
		}
		if patched, err = jsonpatch.MergePatch(original, data); err != nil {
			return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", rs.gr, m.GetName(), "the merge patch could not be applied: "+err.Error(), 0, false)
		}
	case types.StrategicMergePatchType:
		var p map[string]interface{}
		if err := json.Unmarshal(data, &p); err != nil {
			return nil, badRequest("the strategic merge patch is not a JSON object: %v", err)
		}
		if patched, err = strategicpatch.StrategicMergePatch(original, data, rs.newObject()); err != nil {
			return nil, apierrors.NewGenericServerResponse(http.StatusUnprocessableEntity, "", rs.gr, m.GetName(), "the strategic merge patch could not be applied: "+err.Error(), 0, false)
		}
	}
	if bytes.Equal(bytes.TrimSpace(patched), []byte("null")) {
		return nil, badRequest("the patch removed the whole object")
	}
	pr := r.Clone(r.Context())
	pr.Header.Set("Content-Type", runtime.ContentTypeJSON)
	obj, err := s.decodeObject(w, pr, patched, rs.res.GroupVersionKind())
	if err != nil {
		return nil, err
	}
	om, _ := meta.Accessor(obj)
	if om.GetName() != m.GetName() || om.GetNamespace() != m.GetNamespace() {
		return nil, badRequest("a patch may not change the name or namespace of an object")
	}
	if om.GetUID() != "" && om.GetUID() != m.GetUID() {
		return nil, apierrors.NewConflict(rs.gr, m.GetName(), fmt.Errorf("Precondition failed: UID in precondition: %v, UID in object meta: %v", om.GetUID(), m.GetUID()))
	}
	return obj, nil
}

// apply is server-side apply: the field manager merges the applied configuration into the
// live object (or an empty one, creating it) and records ownership in managedFields.
func (s *Server) apply(ctx context.Context, w http.ResponseWriter, r *http.Request, rs *resourceStore, req request, opts writeOptions, data []byte, force bool) (runtime.Object, bool, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, false, badRequest("error decoding YAML: %v", err)
	}
	patch := &unstructured.Unstructured{}
	if err := patch.UnmarshalJSON(js); err != nil {
		return nil, false, badRequest("the apply configuration is not a Kubernetes object: %v", err)
	}
	gvk := rs.res.GroupVersionKind()
	if patch.GroupVersionKind() != gvk {
		return nil, false, badRequest("the apply configuration is of kind %s, %s expected", patch.GroupVersionKind(), gvk)
	}
	if patch.GetName() != "" && patch.GetName() != req.name {
		return nil, false, badRequest("the name of the object (%s) does not match the name on the URL (%s)", patch.GetName(), req.name)
	}
	if rs.res.Namespaced && patch.GetNamespace() != "" && patch.GetNamespace() != req.namespace {
		return nil, false, badRequest("the namespace of the provided object does not match the namespace sent on the request")
	}
	fm := rs.managed[""]
	if f := rs.managed[req.subresource]; f != nil {
		fm = f
	}
	opts.applied = true
	obj, err := s.updateObject(ctx, rs, req, opts, func(cur runtime.Object) (runtime.Object, error) {
		m, _ := meta.Accessor(cur)
		m.SetResourceVersion(patch.GetResourceVersion())
		return applyErr(fm.Apply(cur, patch.DeepCopy(), opts.manager, force))
	})
	if !apierrors.IsNotFound(err) || req.subresource != "" {
		return obj, false, err
	}
	// Apply to a missing object creates it.
	empty := rs.newObject()
	em, _ := meta.Accessor(empty)
	em.SetName(req.name)
	em.SetNamespace(req.namespace)
	created, err := applyErr(fm.Apply(empty, patch.DeepCopy(), opts.manager, force))
	if err != nil {
		return nil, false, err
	}
	created.GetObjectKind().SetGroupVersionKind(gvk)
	cm, _ := meta.Accessor(created)
	cm.SetName(req.name)
	cm.SetNamespace(req.namespace)
	out, err := s.createObject(ctx, rs, created, opts)
	return out, err == nil, err
}

// applyErr maps field manager errors: conflicts are already Status errors (409 with causes).
func applyErr(obj runtime.Object, err error) (runtime.Object, error) {
	if err == nil {
		return obj, nil
	}
	if _, ok := err.(apierrors.APIStatus); ok {
		return nil, err
	}
	return nil, apierrors.NewBadRequest(err.Error())
}

// applyJSONPatch applies p, turning the library's panics on some malformed operations (a
// replace of "" without a value) into errors.
func applyJSONPatch(p jsonpatch.Patch, doc []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("malformed operation: %v", r)
		}
	}()
	return p.Apply(doc)
}
