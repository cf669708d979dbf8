package apiserver

import (
	"bytes"
	"context"
	"net/http"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/nanokube/nanokube/internal/storage"
)

const (
	defaultWatchTimeout = 30 * time.Minute
	bookmarkInterval    = 10 * time.Second
)

// watch streams changes as WatchEvents, served from the watch cache.
func (s *Server) watch(w http.ResponseWriter, r *http.Request, rs *resourceStore, req request, out output) {
	fail := func(err error) { s.codecs.writeError(w, r, err, rs.gr, req.name) }
	q := r.URL.Query()
	sel, err := rs.parseSelection(q.Get("labelSelector"), q.Get("fieldSelector"))
	if err != nil {
		fail(err)
		return
	}
	rev, err := parseRV(q.Get("resourceVersion"))
	if err != nil {
		fail(err)
		return
	}
	bookmarks := isTrue(q.Get("allowWatchBookmarks"))
	sendInitial := q.Get("sendInitialEvents")
	if sendInitial != "" {
		var errs field.ErrorList
		if q.Get("resourceVersionMatch") != string(metav1.ResourceVersionMatchNotOlderThan) {
			errs = append(errs, field.Forbidden(field.NewPath("resourceVersionMatch"), "sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"))
		}
		if !bookmarks {
			errs = append(errs, field.Forbidden(field.NewPath("allowWatchBookmarks"), "sendInitialEvents requires setting allowWatchBookmarks to true"))
		}
		if len(errs) > 0 {
			fail(apierrors.NewInvalid(schema.GroupKind{Group: metav1.GroupName, Kind: "ListOptions"}, "", errs))
			return
		}
	}
	timeout := defaultWatchTimeout
	if v := q.Get("timeoutSeconds"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			fail(badRequest("timeoutSeconds must be a non-negative integer, not %q", v))
			return
		}
		if n > 0 {
			timeout = min(timeout, time.Duration(n)*time.Second)
		}
	}
	stream := out.info.StreamSerializer
	if stream == nil {
		fail(apierrors.NewGenericServerResponse(http.StatusNotAcceptable, "", rs.gr, "", "watch is not supported for "+out.info.MediaType, 0, false))
		return
	}
	prefix := rs.listPrefix(req.namespace)
	if name := nameFromFieldSelector(sel.fields); name != "" && (!rs.res.Namespaced || req.namespace != "") {
		prefix = rs.key(req.namespace, name)
	}
	if isTrue(sendInitial) && q.Get("resourceVersion") == "" {
		// Initial events "as of now": a consistent read, so the cache must first catch up
		// with etcd's current revision (resourceVersion=0 would accept any age).
		if rev, err = s.cfg.Store.Revision(r.Context()); err != nil {
			fail(toStatus(err, rs.gr, ""))
			return
		}
	}
	opts := storage.WatchOptions{Revision: rev, SendInitialEvents: isTrue(sendInitial), KeyPrefix: prefix, Filter: rs.inFilter(rs.filter(sel))}
	if bookmarks {
		opts.BookmarkInterval = bookmarkInterval
	}
	ctx, cancel := context.WithTimeout(r.Context(), timeout)
	defer cancel()
	watcher, err := rs.cache.Watch(ctx, opts)
	if err != nil {
		fail(toStatus(err, rs.gr, ""))
		return
	}
	defer watcher.Stop()

	flusher, _ := w.(http.Flusher)
	contentType := out.info.MediaType
	if contentType == runtime.ContentTypeProtobuf {
		contentType += ";stream=watch"
	}
	w.Header().Set("Content-Type", contentType)
	w.Header().Set("Transfer-Encoding", "chunked")
	w.WriteHeader(http.StatusOK)
	if flusher != nil {
		flusher.Flush()
	}
	// Events of the live stream are encoded once per wire format and event type and the
	// bytes shared by every watcher; a flush happens only when no further event is waiting.
	shareable := out.as == "" && rs.res.SharedStorage == nil
	var buf bytes.Buffer
	frame := func(ev storage.Event) ([]byte, error) {
		obj := rs.out(ev.Object)
		if ev.Type == watch.Bookmark {
			obj = rs.bookmark(ev)
		}
		obj, err := s.transform(ctx, rs, obj, out, r)
		if err != nil {
			return nil, err
		}
		buf.Reset()
		if err := out.info.Serializer.Encode(obj, &buf); err != nil {
			return nil, err
		}
		event := &metav1.WatchEvent{Type: string(ev.Type), Object: runtime.RawExtension{Raw: buf.Bytes()}}
		var fb bytes.Buffer
		if err := stream.Serializer.Encode(event, stream.Framer.NewFrameWriter(&fb)); err != nil {
			return nil, err
		}
		return fb.Bytes(), nil
	}
	write := func(ev storage.Event) bool {
		var data []byte
		var err error
		if shareable && ev.Encoded != nil && ev.Type != watch.Bookmark {
			data, err = ev.Encoded.Get(out.info.MediaType+"/"+string(ev.Type), func() ([]byte, error) { return frame(ev) })
		} else {
			data, err = frame(ev)
		}
		if err != nil {
			s.log.Error("encode watch event", "resource", rs.res.Resource, "err", err)
			return false
		}
		_, err = w.Write(data)
		return err == nil
	}
	events := watcher.ResultChan()
	for ev := range events {
		if !write(ev) {
			return
		}
	pending:
		for {
			select {
			case ev, ok := <-events:
				if !ok {
					break pending
				}
				if !write(ev) {
					return
				}
			default:
				break pending
			}
		}
		if flusher != nil {
			flusher.Flush()
		}
	}
}

// bookmark is the object of a BOOKMARK event: the kind with only a resourceVersion (and the
// initial-events-end annotation when it ends a sendInitialEvents snapshot).
func (rs *resourceStore) bookmark(ev storage.Event) runtime.Object {
	obj := rs.newObject()
	m, _ := meta.Accessor(obj)
	m.SetResourceVersion(strconv.FormatInt(ev.Revision, 10))
	if ev.InitialEventsEnd {
		m.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
	}
	return obj
}
