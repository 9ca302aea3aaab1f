package partitioner

import "os"

// outBuffer is fileOut's write buffer, held only while a row group or the
// footer is being written.
const outBuffer = 64 << 10

// fileOut is the writer's output: it counts bytes and buffers writes only
// while a row group or the footer is being written (release drops the
// buffer), so an idle FileWriter holds no write buffer.
type fileOut struct {
	f   *os.File
	buf []byte
	n   int64
}

func (o *fileOut) Write(p []byte) (int, error) {
	if len(o.buf)+len(p) > outBuffer {
		if err := o.flush(); err != nil {
			return 0, err
		}
	}
	if len(p) >= outBuffer {
		n, err := o.f.Write(p)
		o.n += int64(n)
		return n, err
	}
	if o.buf == nil {
		o.buf = make([]byte, 0, outBuffer)
	}
	o.buf = append(o.buf, p...)
	o.n += int64(len(p))
	return len(p), nil
}

func (o *fileOut) flush() error {
	if len(o.buf) == 0 {
		return nil
	}
	_, err := o.f.Write(o.buf)
	o.buf = o.buf[:0]
	return err
}

func (o *fileOut) release() error {
	err := o.flush()
	o.buf = nil
	return err
}
