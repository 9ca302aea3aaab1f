package s3

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/lakesink/lakesink/sink/retry"
	"github.com/lakesink/lakesink/writers"
)

// abortTimeout bounds the clean-up of a failed multipart upload, which runs
// detached from the caller's (possibly cancelled) context.
const abortTimeout = 2 * time.Minute

// partSizeFor returns the part size for an object of size bytes: the
// configured one, raised (to a whole MiB) when the object would need more than
// MaxParts parts.
func (w *Writer) partSizeFor(size int64) int64 {
	ps := w.cfg.PartSize
	if size > ps*MaxParts {
		ps = (size + MaxParts - 1) / MaxParts
		ps = (ps + 1<<20 - 1) &^ (1<<20 - 1)
	}
	return ps
}

// putMultipart stores a large object as a multipart upload: create, upload
// the parts (Concurrency at a time), check the content length, complete. On
// any failure, including cancellation of ctx, the upload is aborted, so
// neither the object nor a stray upload is left behind.
func (w *Writer) putMultipart(ctx context.Context, key string, src *source, ifAbsent bool) (err error) {
	if src.randomAccess() {
		// Fail before creating anything when the size is wrong.
		if err := src.checkEnd(); err != nil {
			return err
		}
	}
	create := &awss3.CreateMultipartUploadInput{
		Bucket:            aws.String(w.cfg.Bucket),
		Key:               w.objectKey(key),
		ContentType:       aws.String(contentType(key)),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	}
	w.applyStorageOptions(&create.ServerSideEncryption, &create.SSEKMSKeyId, &create.StorageClass)
	created, err := w.client.CreateMultipartUpload(ctx, create)
	if err != nil {
		return fmt.Errorf("create multipart upload: %w", err)
	}
	uploadID := created.UploadId
	defer func() {
		if err != nil {
			w.abort(ctx, key, uploadID)
		}
	}()

	parts, err := w.uploadParts(ctx, key, uploadID, src)
	if err != nil {
		return err
	}
	if err := src.checkEnd(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	complete := &awss3.CompleteMultipartUploadInput{
		Bucket:          aws.String(w.cfg.Bucket),
		Key:             w.objectKey(key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
	}
	if ifAbsent {
		complete.IfNoneMatch = aws.String("*")
	}
	if _, err := w.client.CompleteMultipartUpload(ctx, complete); err != nil {
		if ifAbsent && isConditionFailed(err) {
			return writers.ErrExists
		}
		return fmt.Errorf("complete multipart upload: %w", err)
	}
	return nil
}

// uploadParts uploads src in parts, at most Concurrency at a time (and, for a
// sequential reader, with at most Concurrency part buffers alive). It returns
// once every started upload has returned, with the first error.
func (w *Writer) uploadParts(ctx context.Context, key string, uploadID *string, src *source) ([]types.CompletedPart, error) {
	partSize := w.partSizeFor(src.size)
	n := int((src.size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, n)

	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	var (
		wg       sync.WaitGroup
		errOnce  sync.Once
		firstErr error
	)
	fail := func(err error) {
		errOnce.Do(func() { firstErr = err })
		cancel(err)
	}
	slots := make(chan struct{}, w.cfg.Concurrency)
loop:
	for i := range n {
		select {
		case slots <- struct{}{}:
		case <-ctx.Done():
			break loop
		}
		off := int64(i) * partSize
		size := min(partSize, src.size-off)
		body, release, err := src.part(off, size, &w.bufs)
		if err != nil {
			<-slots
			fail(err)
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			defer release()
			num := aws.Int32(int32(i + 1))
			out, err := w.client.UploadPart(ctx, &awss3.UploadPartInput{
				Bucket:            aws.String(w.cfg.Bucket),
				Key:               w.objectKey(key),
				UploadId:          uploadID,
				PartNumber:        num,
				Body:              body,
				ContentLength:     aws.Int64(size),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
			})
			if err != nil {
				fail(fmt.Errorf("upload part %d: %w", i+1, err))
				return
			}
			parts[i] = types.CompletedPart{PartNumber: num, ETag: out.ETag, ChecksumCRC32C: out.ChecksumCRC32C}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return nil, firstErr
	}
	if err := context.Cause(ctx); err != nil {
		return nil, err // the caller's context ended
	}
	return parts, nil
}

// abort aborts a multipart upload, detached from ctx's cancellation. A
// failure is logged: the upload then lingers until a lifecycle rule removes it.
//
// Why it checks and aborts again: a part whose request was cancelled on our
// side may still be received by the server after the abort and bring the
// upload back ("it might be necessary to abort a given multipart upload
// multiple times", S3's AbortMultipartUpload documentation). So after each
// abort it lists the upload's parts; while the upload still exists it waits
// a little and aborts again, a few times.
func (w *Writer) abort(ctx context.Context, key string, uploadID *string) {
	actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), abortTimeout)
	defer cancel()
	var nsu *types.NoSuchUpload
	var err error
	for attempt := 1; attempt <= 5; attempt++ {
		_, err = w.client.AbortMultipartUpload(actx, &awss3.AbortMultipartUploadInput{
			Bucket:   aws.String(w.cfg.Bucket),
			Key:      w.objectKey(key),
			UploadId: uploadID,
		})
		if err != nil && !errors.As(err, &nsu) {
			break
		}
		err = nil
		if !retry.Sleep(actx, time.Duration(attempt)*100*time.Millisecond) {
			break
		}
		_, lerr := w.client.ListParts(actx, &awss3.ListPartsInput{
			Bucket:   aws.String(w.cfg.Bucket),
			Key:      w.objectKey(key),
			UploadId: uploadID,
		})
		if lerr != nil {
			return // gone (NoSuchUpload), or we cannot tell: the abort succeeded
		}
	}
	if err != nil {
		w.log.Warn("abort multipart upload: the upload stays until a lifecycle rule removes it",
			"key", w.prefix.Object(key), "upload_id", aws.ToString(uploadID), "err", err)
	}
}
