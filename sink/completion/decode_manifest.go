package completion

import "encoding/json"

// DecodeManifest decodes the content of an hour's _SUCCESS marker or of
// one of its revision objects (the JSON Manifest.Encode writes). It is the
// one decoder of the format: the finalizer reads its revisions with it,
// the status page (sink/ops) the hours' markers. It checks the JSON only,
// not the version or what the manifest lists. On an error the fields
// decoded before it are set.
func DecodeManifest(b []byte) (Manifest, error) {
	var m Manifest
	err := json.Unmarshal(b, &m)
	return m, err
}
