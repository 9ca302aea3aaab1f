package completion

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lakesink/lakesink/partitioner"
	"github.com/lakesink/lakesink/writers"
)

// markerStore is where revisions of hour markers live besides _SUCCESS:
//
//	_lakesink/markers/<stream>/<hour UTC, 2006-01-02T15Z>/r000001.json   revision 1, immutable
//	_lakesink/markers/<stream>/<hour UTC, 2006-01-02T15Z>/r000001.sent   its events were delivered
//
// Revision objects are created with PutIfAbsent, so exactly one instance
// publishes each revision; _SUCCESS is a copy of the latest one. Its methods
// are safe for concurrent use (they only call the Writer).
type markerStore struct {
	w      writers.Writer
	stream string
}

func (s markerStore) dir(hour time.Time) string {
	return "_lakesink/markers/" + s.stream + "/" + hour.UTC().Format("2006-01-02T15Z") + "/"
}

func (s markerStore) revKey(hour time.Time, n int) string {
	return fmt.Sprintf("%sr%06d.json", s.dir(hour), n)
}

func (s markerStore) sentKey(hour time.Time, n int) string {
	return fmt.Sprintf("%sr%06d.sent", s.dir(hour), n)
}

// latestRevision returns the highest published revision of hour (0: none).
func (s markerStore) latestRevision(ctx context.Context, hour time.Time) (int, error) {
	objs, err := s.w.List(ctx, s.dir(hour))
	if err != nil {
		return 0, fmt.Errorf("list %s: %w", s.dir(hour), err)
	}
	n := 0
	for _, o := range objs {
		var r int
		if _, err := fmt.Sscanf(o.Key[len(s.dir(hour)):], "r%06d.json", &r); err == nil && strings.HasSuffix(o.Key, ".json") && r > n {
			n = r
		}
	}
	return n, nil
}

// latest returns the highest revision of hour and its manifest (0: none).
func (s markerStore) latest(ctx context.Context, hour time.Time) (int, Manifest, error) {
	n, err := s.latestRevision(ctx, hour)
	if err != nil || n == 0 {
		return n, Manifest{}, err
	}
	m, err := readManifestKey(ctx, s.w, s.revKey(hour, n))
	return n, m, err
}

// sent reports whether the events of revision n of hour were delivered.
func (s markerStore) sent(ctx context.Context, hour time.Time, n int) (bool, error) {
	ok, err := s.w.Exists(ctx, s.sentKey(hour, n))
	if err != nil {
		return false, fmt.Errorf("exists %s: %w", s.sentKey(hour, n), err)
	}
	return ok, nil
}

// readManifestKey reads and decodes a manifest object.
func readManifestKey(ctx context.Context, w writers.Writer, key string) (Manifest, error) {
	var m Manifest
	rc, err := w.Get(ctx, key)
	if err != nil {
		return m, fmt.Errorf("get %s: %w", key, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err == nil {
		m, err = DecodeManifest(b)
	}
	if err != nil {
		return m, fmt.Errorf("read %s: %w", key, err)
	}
	return m, nil
}

// Markers answers a partition worker's questions about published hour
// markers: whether the latest revision lists a file, and whether its
// completion events were delivered. Safe for concurrent use; it only reads
// the Writer.
type Markers struct{ w writers.Writer }

// NewMarkers returns the Markers of the lake w.
func NewMarkers(w writers.Writer) Markers { return Markers{w: w} }

// Lists returns the latest marker revision of the folder of stream's hour
// bucket (0: none yet) and whether it lists the data file of
// topic/partition starting at first. hour is a bucket start in the
// stream's zone (its Location is the zone): a folder's markers are keyed by
// its first bucket (partitioner.FolderHours).
func (m Markers) Lists(ctx context.Context, stream string, hour time.Time, topic string, partition int, first int64) (int, bool, error) {
	hour = partitioner.FolderHours(hour, hour.Location())[0]
	n, man, err := markerStore{w: m.w, stream: stream}.latest(ctx, hour)
	if err != nil || n == 0 {
		return n, false, err
	}
	return n, man.Lists(topic, partition, first), nil
}

// Sent reports whether the completion events of revision n of the folder
// of stream's hour bucket were delivered (hour as for Lists).
func (m Markers) Sent(ctx context.Context, stream string, hour time.Time, n int) (bool, error) {
	hour = partitioner.FolderHours(hour, hour.Location())[0]
	return markerStore{w: m.w, stream: stream}.sent(ctx, hour, n)
}
