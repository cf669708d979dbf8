package apiserver

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/runtime/serializer/protobuf"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// codecs bundles the scheme of every type the API server speaks and its serializers.
type codecs struct {
	scheme     *runtime.Scheme
	factory    serializer.CodecFactory
	strict     runtime.Decoder // JSON with unknown and duplicate fields reported
	strictYAML runtime.Decoder
	storage    runtime.Encoder // protobuf, the storage encoding
}

func newCodecs() *codecs {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		panic(err) // only on a programming error in the scheme builders
	}
	if err := metav1.AddMetaToScheme(s); err != nil {
		panic(err)
	}
	metav1.AddToGroupVersion(s, schema.GroupVersion{Version: "v1"})
	metav1.AddToGroupVersion(s, metav1.SchemeGroupVersion) // DeleteOptions as meta.k8s.io/v1
	opts := json.SerializerOptions{Strict: true}
	return &codecs{
		scheme:     s,
		factory:    serializer.NewCodecFactory(s),
		strict:     json.NewSerializerWithOptions(json.DefaultMetaFactory, s, s, opts),
		strictYAML: json.NewSerializerWithOptions(json.DefaultMetaFactory, s, s, json.SerializerOptions{Yaml: true, Strict: true}),
		storage:    protobuf.NewSerializer(s, s),
	}
}

// StorageCodec is the codec objects are stored in etcd with: protobuf for every built-in
// kind, decodable by any Kubernetes tool that reads etcd.
func StorageCodec() runtime.Codec {
	c := newCodecs()
	return runtime.NewCodec(c.storage, c.factory.UniversalDeserializer())
}
