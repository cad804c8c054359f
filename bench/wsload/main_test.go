package main

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"hash/crc32"
	"io"
	"net"
	"net/url"
	"testing"
	"time"
)

// tickFrame is a binary payload of `count` entries whose first venue time is ts.
func tickFrame(count int, ts int64, corrupt bool) []byte {
	body := make([]byte, headerSize+entrySize*count)
	binary.LittleEndian.PutUint16(body[4:], uint16(count))
	for i := range count {
		binary.LittleEndian.PutUint64(body[headerSize+entrySize*i+14:], uint64(ts))
	}
	binary.LittleEndian.PutUint32(body[0:], crc32.ChecksumIEEE(body[4:]))
	if corrupt {
		body[len(body)-1] ^= 1
	}
	return body
}

func serverFrame(opcode byte, payload []byte) []byte {
	size := len(payload)
	out := []byte{0x80 | opcode}
	switch {
	case size < 126:
		out = append(out, byte(size))
	case size < 1<<16:
		out = append(out, 126, byte(size>>8), byte(size))
	default:
		out = append(out, 127)
		out = binary.BigEndian.AppendUint64(out, uint64(size))
	}
	return append(out, payload...)
}

// readClientFrame reads one masked client frame: (opcode, unmasked payload).
func readClientFrame(t *testing.T, r *bufio.Reader) (byte, []byte) {
	t.Helper()
	var head [2]byte
	if _, err := io.ReadFull(r, head[:]); err != nil {
		t.Fatal(err)
	}
	if head[1]&0x80 == 0 {
		t.Fatal("client frame not masked")
	}
	size := uint64(head[1] & 0x7F)
	if size == 126 {
		var ext [2]byte
		_, _ = io.ReadFull(r, ext[:])
		size = uint64(binary.BigEndian.Uint16(ext[:]))
	}
	var mask [4]byte
	_, _ = io.ReadFull(r, mask[:])
	payload := make([]byte, size)
	_, _ = io.ReadFull(r, payload)
	for i := range payload {
		payload[i] ^= mask[i%4]
	}
	return head[0] & 0x0F, payload
}

func TestClientCountsChecksAndPongs(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	ts := time.Now().UnixNano() - 3_000_000 // 3 ms ago
	pong := make(chan []byte, 1)
	go func() {
		conn, err := ln.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		var req bytes.Buffer
		for !bytes.HasSuffix(req.Bytes(), []byte("\r\n\r\n")) {
			line, _ := r.ReadBytes('\n')
			req.Write(line)
		}
		if !bytes.Contains(req.Bytes(), []byte("Authorization: Bearer tok\r\n")) {
			t.Error("no bearer token in the handshake")
		}
		for range instruments {
			if op, _ := readClientFrame(t, r); op != 0x1 {
				t.Error("subscribe is not a text frame")
			}
		}
		var out bytes.Buffer
		out.WriteString("HTTP/1.1 101 Switching Protocols\r\n\r\n")
		for range 1 + 2*instruments {
			out.Write(serverFrame(0x1, []byte(`{"type":"x"}`)))
		}
		// 2 small, one of 126-length (100 entries), one of 127-length (2,000 entries), one bad.
		out.Write(serverFrame(0x2, tickFrame(1, ts, false)))
		out.Write(serverFrame(0x9, []byte("hi")))
		out.Write(serverFrame(0x2, tickFrame(3, ts, false)))
		out.Write(serverFrame(0x2, tickFrame(100, ts, false)))
		out.Write(serverFrame(0x2, tickFrame(2000, ts, false)))
		out.Write(serverFrame(0x2, tickFrame(5, ts, true)))
		for _, b := range out.Bytes() { // split across reads as badly as possible
			if _, err := conn.Write([]byte{b}); err != nil {
				return
			}
		}
		op, payload := readClientFrame(t, r)
		if op == 0xA {
			pong <- payload
		}
		_, _ = io.Copy(io.Discard, r)
	}()
	measuring.Store(true)
	defer measuring.Store(false)
	c := &client{sample: true}
	replied := make(chan error, 1)
	u, _ := url.Parse("ws://" + ln.Addr().String() + "/ws?format=binary")
	go c.run(u, "tok", 1+2*instruments, replied)
	if err := <-replied; err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-pong:
		if string(p) != "hi" {
			t.Errorf("pong payload %q", p)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no pong")
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.frames.Load() < 5 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if got := c.frames.Load(); got != 5 {
		t.Fatalf("frames %d, want 5", got)
	}
	if got := c.ticks.Load(); got != 1+3+100+2000+5 {
		t.Errorf("ticks %d", got)
	}
	if got := c.bad.Load(); got != 1 {
		t.Errorf("bad frames %d, want 1", got)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.lat) != 5 || c.lat[0] < 3 || c.lat[0] > 10_000 {
		t.Errorf("latency samples %v", c.lat)
	}
	c.conn.Close()
}
