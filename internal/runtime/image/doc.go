// Package image owns the runtime's image store: pulling from OCI and Docker v2 registries with
// go-containerregistry, importing image tarballs, and keeping content on disk by digest.
//
// Layout under the store root:
//
//	blobs/sha256/<hex>     image configs and manifests, by digest
//	layers/sha256/<hex>/   each layer unpacked once, keyed by its diff ID (uncompressed digest),
//	                       with OCI whiteouts turned into overlayfs whiteouts
//	index.json             image records: id (config digest), tags, repo digests, layer chain
//
// Layers are shared: an image is a list of diff IDs, and two images with a common base point at
// the same directories. Containers use them as overlayfs lower directories; Acquire/Release
// count those uses so that removing an image never pulls a layer from under a live container.
//
// All methods are safe for concurrent use. Returned *Image values are copies the caller owns.
package image
