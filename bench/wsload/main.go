// Command wsload is the WebSocket gateway bench's load generator (bench/ws_gateway.py,
// --load go): the same clients, flags and JSON result as the Python `clients_main`, compiled,
// plus a CRC check of every frame. (Measured on the 2-core dev VM it costs 10-13 us of CPU a
// frame against the Python client's 12-17: the kernel's loopback read and wakeup dominate.)
//
// It opens --clients raw TCP WebSocket connections (masked client frames; `Authorization:
// Bearer` when --token is given), subscribes each to the 50 market:B00-USD..market:B49-USD
// channels, and waits for 1 + 2*50 text frames on each (welcome, then subscribed + snapshot
// per channel), connecting in batches of 50. Then it writes the --ready file, warms up 2 s
// and measures for --seconds: ticks from each binary frame's header (u16 LE at offset 4 of
// the payload), frames, and on every 10th client a latency sample per frame, now minus the
// first entry's venue time (i64 LE at payload offset 20), in ms. The receive time is taken as
// soon as a socket read returns, once for every frame that read completed (as the Python
// client's data_received does). Every binary frame's CRC32 (IEEE over payload[4:], stored as
// u32 LE at 0) and length are checked, over the whole run; failures are `bad_frames`.
// Pings are answered with masked pongs. Standard library only.
package main

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"hash/crc32"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

const (
	instruments = 50
	batch       = 50
	entrySize   = 38
	headerSize  = 6
)

var measuring atomic.Bool

type client struct {
	conn   net.Conn
	sample bool
	ticks  atomic.Int64
	frames atomic.Int64
	bad    atomic.Int64
	mu     sync.Mutex
	lat    []float64
}

func masked(opcode byte, payload []byte) []byte {
	size := len(payload)
	var out []byte
	switch {
	case size < 126:
		out = append(out, 0x80|opcode, 0x80|byte(size))
	case size < 1<<16:
		out = append(out, 0x80|opcode, 0x80|126, byte(size>>8), byte(size))
	default:
		out = append(out, 0x80|opcode, 0x80|127)
		out = binary.BigEndian.AppendUint64(out, uint64(size))
	}
	var mask [4]byte
	binary.LittleEndian.PutUint32(mask[:], mrand.Uint32())
	out = append(out, mask[:]...)
	for i, b := range payload {
		out = append(out, b^mask[i%4])
	}
	return out
}

// frame checks and records one binary frame's payload.
func (c *client) binaryFrame(body []byte, now int64) {
	good := len(body) >= headerSize &&
		len(body) == headerSize+entrySize*int(binary.LittleEndian.Uint16(body[4:6])) &&
		crc32.ChecksumIEEE(body[4:]) == binary.LittleEndian.Uint32(body[0:4])
	if !good {
		c.bad.Add(1)
	}
	if !measuring.Load() || len(body) < headerSize {
		return
	}
	c.ticks.Add(int64(binary.LittleEndian.Uint16(body[4:6])))
	c.frames.Add(1)
	if c.sample && len(body) >= 28 {
		ts := int64(binary.LittleEndian.Uint64(body[20:28]))
		c.mu.Lock()
		c.lat = append(c.lat, float64(now-ts)/1e6)
		c.mu.Unlock()
	}
}

// run connects, subscribes, reports on `replied` once every text reply came, then reads until
// the connection ends.
func (c *client) run(u *url.URL, token string, wantTexts int, replied chan<- error) {
	done := false
	fail := func(err error) {
		if !done {
			done = true
			replied <- err
		}
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		fail(err)
		return
	}
	c.conn = conn
	var key [16]byte
	_, _ = rand.Read(key[:])
	auth := ""
	if token != "" {
		auth = "Authorization: Bearer " + token + "\r\n"
	}
	var req bytes.Buffer
	fmt.Fprintf(&req, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n%s\r\n",
		u.RequestURI(), u.Host, base64.StdEncoding.EncodeToString(key[:]), auth)
	for i := range instruments {
		msg := fmt.Sprintf(`{"type":"subscribe","channel":"market:B%02d-USD"}`, i)
		req.Write(masked(0x1, []byte(msg)))
	}
	if _, err := conn.Write(req.Bytes()); err != nil {
		fail(err)
		return
	}
	buf := make([]byte, 0, 64<<10)
	open := false
	texts := 0
	for {
		if len(buf) == cap(buf) { // a frame larger than the buffer: grow it
			grown := make([]byte, len(buf), 2*cap(buf))
			copy(grown, buf)
			buf = grown
		}
		n, err := conn.Read(buf[len(buf):cap(buf)])
		now := time.Now().UnixNano()
		if err != nil {
			fail(fmt.Errorf("read: %w", err))
			return
		}
		buf = buf[:len(buf)+n]
		if !open {
			end := bytes.Index(buf, []byte("\r\n\r\n"))
			if end < 0 {
				continue
			}
			if !bytes.HasPrefix(buf, []byte("HTTP/1.1 101")) {
				fail(fmt.Errorf("handshake refused: %q", buf[:min(len(buf), 200)]))
				return
			}
			buf = buf[:copy(buf, buf[end+4:])]
			open = true
		}
		pos := 0
		for len(buf)-pos >= 2 {
			size, head := uint64(buf[pos+1]&0x7F), 2
			switch size {
			case 126:
				if len(buf)-pos < 4 {
					goto partial
				}
				size, head = uint64(binary.BigEndian.Uint16(buf[pos+2:])), 4
			case 127:
				if len(buf)-pos < 10 {
					goto partial
				}
				size, head = binary.BigEndian.Uint64(buf[pos+2:]), 10
			}
			if uint64(len(buf)-pos-head) < size {
				// Make room for the whole frame if the buffer cannot hold it.
				if need := head + int(size); need > cap(buf) {
					grown := make([]byte, len(buf)-pos, need)
					copy(grown, buf[pos:])
					buf, pos = grown, 0
				}
				goto partial
			}
			{
				opcode, body := buf[pos]&0x0F, buf[pos+head:pos+head+int(size)]
				switch opcode {
				case 0x2:
					c.binaryFrame(body, now)
				case 0x1:
					texts++
					if texts >= wantTexts {
						fail(nil)
					}
				case 0x9:
					if _, err := conn.Write(masked(0xA, body)); err != nil {
						fail(err)
						return
					}
				case 0x8:
					fail(fmt.Errorf("closed by the server: %x", body))
					return
				}
				pos += head + int(size)
			}
		}
	partial:
		buf = buf[:copy(buf, buf[pos:])]
	}
}

func main() {
	rawURL := flag.String("url", "", "ws://host:port/path?query")
	n := flag.Int("clients", 0, "connections")
	seconds := flag.Float64("seconds", 0, "measured window")
	ready := flag.String("ready", "", "file written once every client is subscribed")
	out := flag.String("out", "", "file the JSON result is written to")
	token := flag.String("token", "", "bearer token")
	flag.Parse()
	if *rawURL == "" || *n <= 0 || *seconds <= 0 || *ready == "" || *out == "" {
		flag.Usage()
		os.Exit(2)
	}
	u, err := url.Parse(*rawURL)
	if err != nil {
		fatal(err)
	}
	if u.Port() == "" {
		u.Host += ":80"
	}
	clients := make([]*client, *n)
	for start := 0; start < *n; start += batch {
		replied := make(chan error, batch)
		end := min(start+batch, *n)
		for i := start; i < end; i++ {
			clients[i] = &client{sample: i%10 == 0}
			go clients[i].run(u, *token, 1+2*instruments, replied)
		}
		timeout := time.After(60 * time.Second)
		for range end - start {
			select {
			case err := <-replied:
				if err != nil {
					fatal(err)
				}
			case <-timeout:
				fatal(fmt.Errorf("clients %d..%d: no replies within 60 s", start, end-1))
			}
		}
	}
	if err := os.WriteFile(*ready, []byte("ready"), 0o644); err != nil {
		fatal(err)
	}
	time.Sleep(2 * time.Second) // warm-up: rounds settle
	measuring.Store(true)
	began := time.Now()
	time.Sleep(time.Duration(*seconds * float64(time.Second)))
	measuring.Store(false)
	took := time.Since(began).Seconds()

	var deliveries, frames, bad int64
	minClient, maxClient := int64(math.MaxInt64), int64(0)
	latency := []float64{}
	for _, c := range clients {
		t := c.ticks.Load()
		deliveries += t
		frames += c.frames.Load()
		bad += c.bad.Load()
		minClient, maxClient = min(minClient, t), max(maxClient, t)
		c.mu.Lock()
		latency = append(latency, c.lat...)
		c.mu.Unlock()
	}
	result, err := json.Marshal(map[string]any{
		"deliveries": deliveries, "frames": frames, "seconds": took, "latency_ms": latency,
		"min_client": minClient, "max_client": maxClient, "bad_frames": bad,
	})
	if err != nil {
		fatal(err)
	}
	if err := os.WriteFile(*out, result, 0o644); err != nil {
		fatal(err)
	}
	for _, c := range clients {
		if c.conn != nil {
			_ = c.conn.Close()
		}
	}
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "wsload:", err)
	os.Exit(1)
}
