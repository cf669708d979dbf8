package apiserver

import (
	"bytes"
	"context"
	"net/http"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/nanokube/nanokube/internal/apiserver/registry"
)

// transform turns a result into what the client asked for with "as=": a Table, or metadata
// only. Objects of other kinds (Status, Scale) pass through.
func (s *Server) transform(ctx context.Context, rs *resourceStore, obj runtime.Object, out output, r *http.Request) (runtime.Object, error) {
	lr, isList := obj.(*listResult)
	if !isList && obj.GetObjectKind().GroupVersionKind() != rs.res.GroupVersionKind() && !meta.IsListType(obj) {
		return obj, nil
	}
	var items []runtime.Object
	var listMeta metav1.ListInterface
	switch {
	case isList:
		items = lr.items
		listMeta, _ = meta.ListAccessor(lr.list)
	case meta.IsListType(obj):
		var err error
		if items, err = meta.ExtractList(obj); err != nil {
			return nil, apierrors.NewInternalError(err)
		}
		listMeta, _ = meta.ListAccessor(obj)
	}
	switch out.as {
	case "":
		if isList {
			if err := meta.SetList(lr.list, lr.items); err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			return lr.list, nil
		}
		return obj, nil
	case "Table":
		if items == nil && listMeta == nil {
			items = []runtime.Object{obj}
		}
		return s.table(rs, items, listMeta, r.URL.Query().Get("includeObject"), out)
	case "PartialObjectMetadata":
		if listMeta != nil {
			return nil, apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", rs.gr, "", "a list can not be returned as PartialObjectMetadata: ask for PartialObjectMetadataList", 0, false)
		}
		return partialMetadata(obj), nil
	default: // PartialObjectMetadataList
		if listMeta == nil {
			return nil, apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", rs.gr, "", "an object can not be returned as PartialObjectMetadataList", 0, false)
		}
		list := &metav1.PartialObjectMetadataList{TypeMeta: metav1.TypeMeta{Kind: "PartialObjectMetadataList", APIVersion: "meta.k8s.io/v1"}}
		list.ResourceVersion, list.Continue, list.RemainingItemCount = listMeta.GetResourceVersion(), listMeta.GetContinue(), listMeta.GetRemainingItemCount()
		for _, it := range items {
			list.Items = append(list.Items, *partialMetadata(it))
		}
		return list, nil
	}
}

func partialMetadata(obj runtime.Object) *metav1.PartialObjectMetadata {
	m, _ := meta.Accessor(obj)
	p := meta.AsPartialObjectMetadata(m)
	p.TypeMeta = metav1.TypeMeta{Kind: "PartialObjectMetadata", APIVersion: "meta.k8s.io/v1"}
	return p
}

// table renders objects as a meta.k8s.io/v1 Table with the strategy's columns.
func (s *Server) table(rs *resourceStore, items []runtime.Object, listMeta metav1.ListInterface, include string, out output) (*metav1.Table, error) {
	st := rs.res.Strategy
	cols, row := st.Columns, st.Row
	if cols == nil || row == nil {
		cols, row = registry.DefaultColumns, registry.DefaultRow
	}
	t := &metav1.Table{TypeMeta: metav1.TypeMeta{Kind: "Table", APIVersion: "meta.k8s.io/v1"}, ColumnDefinitions: cols, Rows: make([]metav1.TableRow, 0, len(items))}
	if listMeta != nil {
		t.ResourceVersion, t.Continue, t.RemainingItemCount = listMeta.GetResourceVersion(), listMeta.GetContinue(), listMeta.GetRemainingItemCount()
	}
	var buf bytes.Buffer
	for _, it := range items {
		tr := metav1.TableRow{Cells: row(it)}
		switch include {
		case "None":
		case "Object":
			buf.Reset()
			if err := out.info.Serializer.Encode(it, &buf); err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			tr.Object.Raw = bytes.Clone(buf.Bytes())
		default:
			p := partialMetadata(it)
			p.ManagedFields = nil
			buf.Reset()
			if err := out.info.Serializer.Encode(p, &buf); err != nil {
				return nil, apierrors.NewInternalError(err)
			}
			tr.Object.Raw = bytes.Clone(buf.Bytes())
		}
		t.Rows = append(t.Rows, tr)
	}
	return t, nil
}
