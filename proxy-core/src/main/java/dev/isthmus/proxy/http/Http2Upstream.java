package dev.isthmus.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelOutboundHandler;
import io.netty.channel.ChannelPromise;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.codec.http2.DefaultHttp2DataFrame;
import io.netty.handler.codec.http2.DefaultHttp2FrameReader;
import io.netty.handler.codec.http2.DefaultHttp2HeadersDecoder;
import io.netty.handler.codec.http2.DefaultHttp2HeadersEncoder;
import io.netty.handler.codec.http2.DefaultHttp2HeadersFrame;
import io.netty.handler.codec.http2.DefaultHttp2ResetFrame;
import io.netty.handler.codec.http2.Http2CodecUtil;
import io.netty.handler.codec.http2.Http2DataFrame;
import io.netty.handler.codec.http2.Http2Error;
import io.netty.handler.codec.http2.Http2Exception;
import io.netty.handler.codec.http2.Http2FrameAdapter;
import io.netty.handler.codec.http2.Http2FrameStream;
import io.netty.handler.codec.http2.Http2Headers;
import io.netty.handler.codec.http2.Http2HeadersEncoder;
import io.netty.handler.codec.http2.Http2HeadersFrame;
import io.netty.handler.codec.http2.Http2ResetFrame;
import io.netty.handler.codec.http2.Http2Settings;
import io.netty.handler.codec.http2.Http2Stream;
import io.netty.handler.codec.http2.Http2WindowUpdateFrame;
import io.netty.util.collection.IntObjectHashMap;
import java.net.SocketAddress;
import java.nio.channels.ClosedChannelException;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.List;

/**
 * The client end of one upstream HTTP/2 connection of the relay ({@link Http2Relay}), in the place
 * of Netty's {@code Http2FrameCodec} and {@code StreamBufferingEncoder}, and written for what the
 * relay does with them: it takes and gives the same frame objects (headers, data, resets, window
 * updates given back, on streams of its own {@link Stream}), and keeps only the state RFC 9113 asks
 * of a client: stream ids and states, the server's SETTINGS, both directions' flow-control windows,
 * PING and GOAWAY. Netty's frame reader and HPACK coder do the parsing and header compression.
 *
 * <p>What it does not do is what the relay has no use for: no priority tree (RFC 9113 deprecates
 * it; the send window goes to blocked streams in turn), no promise per frame piece, no stream
 * property maps, no writability events per stream. Measured against the codec it replaces in
 * docs/benchmarks.md ("A lean upstream HTTP/2 connection").
 *
 * <ul>
 *   <li>Streams over the server's SETTINGS_MAX_CONCURRENT_STREAMS (100 until its SETTINGS come) wait,
 *       in order, with their frames, and take an id when a slot frees: {@link Stream#waiting()}.
 *   <li>DATA beyond a send window waits on its stream; a window update sends it. Trailers wait
 *       behind the DATA before them.
 *   <li>Received DATA counts against the stream's and the connection's windows (65,535 bytes, as
 *       Netty's codec had); the relay gives bytes back with a {@link Http2WindowUpdateFrame} once it
 *       has written them on (backpressure), and a WINDOW_UPDATE goes out when half a window is due.
 *       A closed stream's bytes not given back go back to the connection.
 *   <li>A stream that closes (both ends done, a reset either way, past a GOAWAY's last stream, or
 *       its connection lost) is announced with a {@link Closed} user event. A waiting stream that
 *       never opened is not: its frames' promises fail instead, as the buffering encoder's did.
 *   <li>A frame the server should not have sent (a flow-control overrun, a frame on a stream never
 *       opened, a push promise, a frame before its SETTINGS) ends the connection with GOAWAY and
 *       the error; a stream error (headers that fail validation) resets that stream only.
 * </ul>
 */
final class Http2Upstream extends ByteToMessageDecoder implements ChannelOutboundHandler {

    /** Our receive windows, per stream and for the connection: HTTP/2's initial 65,535 bytes, Netty's default as well. */
    static final int WINDOW = Http2CodecUtil.DEFAULT_WINDOW_SIZE;
    private static final long MAX_HEADER_LIST = Http2CodecUtil.DEFAULT_HEADER_LIST_SIZE;
    private static final byte DATA = 0x0;
    private static final byte HEADERS = 0x1;
    private static final byte RST_STREAM = 0x3;
    private static final byte SETTINGS = 0x4;
    private static final byte PING = 0x6;
    private static final byte GOAWAY = 0x7;
    private static final byte WINDOW_UPDATE = 0x8;
    private static final byte CONTINUATION = 0x9;
    private static final int END_STREAM = 0x1;
    private static final int END_HEADERS = 0x4;
    private static final int ACK = 0x1;
    /** DATA up to this size is copied behind its frame header: one buffer, one write. */
    private static final int COPY_BELOW = 1024;
    /** Acknowledgements (of SETTINGS and PING) not yet written, at most: more is a server that asks and does not read (Netty's limit). */
    static final int MAX_OUTSTANDING_CONTROL = 10_000;
    /** Empty DATA frames without END_STREAM in a row, at most (Netty's limit): more is a flood. */
    static final int MAX_EMPTY_DATA = 2;

    /** A stream of this connection, as the relay's frames name it. */
    static final class Stream implements Http2FrameStream {
        private int id;
        private Http2Stream.State state = Http2Stream.State.IDLE;
        private boolean waiting;
        private boolean localEnded;
        private boolean remoteEnded;
        private int sendWindow;
        private int recvWindow = WINDOW;
        /** Received and not yet given back by the relay. */
        private int unconsumed;
        /** Given back, not yet announced in a WINDOW_UPDATE. */
        private int toAck;
        /** Frames not yet written (no slot, or no send window), each followed by its promise. */
        private ArrayDeque<Object> queue;
        private boolean blocked;

        @Override
        public int id() {
            return id;
        }

        @Override
        public Http2Stream.State state() {
            return state;
        }

        /** Given frames, but no id yet: it waits for one of the server's concurrent streams. */
        boolean waiting() {
            return waiting;
        }

        @Override
        public String toString() {
            return "stream " + id + " " + state;
        }
    }

    /** A user event: {@code stream} has closed. */
    record Closed(Stream stream) {
    }

    /** A user event, before the streams it refuses close: the server sent GOAWAY; no new stream goes on this connection. */
    record GoAway(int lastStreamId, long errorCode) {
    }

    private final DefaultHttp2FrameReader reader = new DefaultHttp2FrameReader(new DefaultHttp2HeadersDecoder(true, MAX_HEADER_LIST));
    private final DefaultHttp2HeadersEncoder encoder = new DefaultHttp2HeadersEncoder(Http2HeadersEncoder.NEVER_SENSITIVE, false);
    private final IntObjectHashMap<Stream> active = new IntObjectHashMap<>();
    private final ArrayDeque<Stream> waiting = new ArrayDeque<>();
    private final ArrayDeque<Stream> blocked = new ArrayDeque<>();
    private final Listener listener = new Listener();
    private ChannelHandlerContext ctx;
    private boolean prefaceSent;
    private boolean settingsReceived;
    private int nextId = 1;
    private int lastOpened;
    private long maxStreams = 100;
    private int peerInitialWindow = WINDOW;
    private int maxFrameSize = Http2CodecUtil.DEFAULT_MAX_FRAME_SIZE;
    private int connSendWindow = WINDOW;
    private int connRecvWindow = WINDOW;
    private int connToAck;
    private int goAwayLastStreamId = -1;
    private boolean goAwaySent;
    private boolean needsFlush;
    private int outstandingControl;
    private int emptyData;
    private final io.netty.channel.ChannelFutureListener controlWritten = f -> outstandingControl--;

    /** A new stream: an id comes with its first HEADERS written. */
    Stream newStream() {
        return new Stream();
    }

    /** The server's SETTINGS_MAX_CONCURRENT_STREAMS (100 until its SETTINGS come; unlimited if they do not set it). */
    long maxStreams() {
        return maxStreams;
    }

    /** The last stream id the server will process (its GOAWAY's, or ours when ids ran out); -1 while new streams may go on. */
    int goAwayLastStreamId() {
        return goAwayLastStreamId;
    }

    @Override
    public void handlerAdded(ChannelHandlerContext ctx) throws Exception {
        this.ctx = ctx;
        if (ctx.channel().isActive()) {
            sendPreface();
        }
        super.handlerAdded(ctx);
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) throws Exception {
        sendPreface();
        super.channelActive(ctx);
    }

    private void sendPreface() {
        if (prefaceSent) {
            return;
        }
        prefaceSent = true;
        ctx.write(Http2CodecUtil.connectionPrefaceBuf());
        ByteBuf settings = ctx.alloc().buffer(9 + 12);
        frameHeader(settings, 12, SETTINGS, 0, 0);
        settings.writeShort(Http2CodecUtil.SETTINGS_ENABLE_PUSH).writeInt(0);
        settings.writeShort(Http2CodecUtil.SETTINGS_MAX_HEADER_LIST_SIZE).writeInt((int) MAX_HEADER_LIST);
        ctx.writeAndFlush(settings);
    }

    private static void frameHeader(ByteBuf out, int length, byte type, int flags, int streamId) {
        out.writeMedium(length);
        out.writeByte(type);
        out.writeByte(flags);
        out.writeInt(streamId);
    }

    // ---- what the relay writes

    @Override
    public void write(ChannelHandlerContext ctx, Object msg, ChannelPromise promise) {
        if (!prefaceSent && ctx.channel().isActive()) {
            sendPreface(); // the connect future's listeners run before channelActive
        }
        if (msg instanceof Http2HeadersFrame h && h.stream() instanceof Stream s) {
            send(s, h, promise);
        } else if (msg instanceof Http2DataFrame d && d.stream() instanceof Stream s) {
            send(s, d, promise);
        } else if (msg instanceof Http2ResetFrame r && r.stream() instanceof Stream s) {
            reset(s, r.errorCode(), promise);
        } else if (msg instanceof Http2WindowUpdateFrame w && w.stream() instanceof Stream s) {
            consumed(s, w.windowSizeIncrement());
            promise.trySuccess();
        } else {
            ctx.write(msg, promise);
        }
    }

    /** HEADERS or DATA of {@code s}: written now if its turn has come, else queued on it. */
    private void send(Stream s, Object frame, ChannelPromise promise) {
        if (s.state == Http2Stream.State.CLOSED || s.localEnded) {
            io.netty.util.ReferenceCountUtil.release(frame);
            promise.tryFailure(new IllegalStateException("HTTP/2 upstream " + s + ": the stream has ended, a frame cannot follow"));
            return;
        }
        if (s.id == 0 && !s.waiting) {
            if (goAwayLastStreamId >= 0 || !ctx.channel().isActive()) { // stream ids running out counts as a GOAWAY
                io.netty.util.ReferenceCountUtil.release(frame);
                promise.tryFailure(Http2Exception.connectionError(Http2Error.REFUSED_STREAM,
                        "HTTP/2 upstream: no new stream on this connection (GOAWAY received, closed, or stream ids used up)"));
                return;
            }
            if (active.size() < maxStreams) {
                open(s);
            } else {
                s.waiting = true;
                waiting.add(s);
            }
        }
        if (s.waiting || s.queue != null && !s.queue.isEmpty() || !emit(s, frame, promise)) {
            if (s.queue == null) {
                s.queue = new ArrayDeque<>(4);
            }
            s.queue.add(frame);
            s.queue.add(promise);
            if (!s.waiting) {
                drain(s);
            }
        }
    }

    private void open(Stream s) {
        s.id = nextId;
        nextId += 2; // overflows to negative past 2^31 - 1: no further stream then
        lastOpened = s.id;
        s.state = Http2Stream.State.OPEN;
        s.sendWindow = peerInitialWindow;
        active.put(s.id, s);
        if (nextId < 0) {
            // ids used up (at 100k streams a second, after about three hours): the connection is going
            // away as if the server had said so after this stream, so new streams go on another one
            goingAway(lastOpened, Http2Error.NO_ERROR.code(), "HTTP/2 upstream: stream ids used up, stream not sent");
        }
    }

    /**
     * No new stream on this connection: the relay is told ({@link GoAway}), the waiting streams'
     * frames fail (they were never sent, so the relay may send them again), and the streams above
     * {@code lastStreamId} close (not processed).
     */
    private void goingAway(int lastStreamId, long errorCode, String why) {
        goAwayLastStreamId = goAwayLastStreamId < 0 ? lastStreamId : Math.min(goAwayLastStreamId, lastStreamId);
        ctx.fireUserEventTriggered(new GoAway(lastStreamId, errorCode));
        if (!waiting.isEmpty()) {
            failWaiting(Http2Exception.connectionError(Http2Error.REFUSED_STREAM, why));
        }
        List<Stream> above = new ArrayList<>();
        for (Stream s : active.values()) {
            if (s.id > goAwayLastStreamId) {
                above.add(s);
            }
        }
        for (Stream s : above) {
            close(s, true); // not processed: the relay may send them again
        }
    }

    /** For tests: the next stream takes id {@code id} (odd), as if the ones before had been used. */
    void skipStreamIdsTo(int id) {
        nextId = id;
    }

    /**
     * Writes a frame of an open stream if it can go now (HEADERS always; DATA when both send windows
     * take all of it); false when it cannot, and nothing is written.
     */
    private boolean emit(Stream s, Object frame, ChannelPromise promise) {
        if (frame instanceof Http2HeadersFrame h) {
            writeHeaders(s, h.headers(), h.isEndStream(), promise);
            return true;
        }
        var d = (Http2DataFrame) frame;
        int n = d.content().readableBytes();
        if (n > Math.min(s.sendWindow, connSendWindow)) {
            return false;
        }
        writeData(s, d.content(), d.isEndStream(), promise);
        return true;
    }

    private void writeHeaders(Stream s, Http2Headers headers, boolean endStream, ChannelPromise promise) {
        ByteBuf buf = ctx.alloc().buffer(256);
        buf.writerIndex(9);
        try {
            encoder.encodeHeaders(s.id, headers, buf);
        } catch (Http2Exception | RuntimeException e) {
            buf.release();
            promise.tryFailure(e);
            close(s, true); // nothing of it went out: the server never sees this id (a later one closes it implicitly)
            return;
        }
        int block = buf.readableBytes() - 9;
        int flags = endStream ? END_STREAM : 0;
        if (block <= maxFrameSize) {
            buf.setMedium(0, block);
            buf.setByte(3, HEADERS);
            buf.setByte(4, flags | END_HEADERS);
            buf.setInt(5, s.id);
            ctx.write(buf, promise);
        } else { // HEADERS, then CONTINUATION frames
            ByteBuf out = ctx.alloc().buffer(block + 9 * (block / maxFrameSize + 1));
            buf.skipBytes(9);
            boolean first = true;
            while (buf.isReadable()) {
                int len = Math.min(maxFrameSize, buf.readableBytes());
                boolean last = len == buf.readableBytes();
                frameHeader(out, len, first ? HEADERS : CONTINUATION, (first ? flags : 0) | (last ? END_HEADERS : 0), s.id);
                out.writeBytes(buf, len);
                first = false;
            }
            buf.release();
            ctx.write(out, promise);
        }
        if (endStream) {
            localEnd(s);
        }
    }

    private void writeData(Stream s, ByteBuf data, boolean endStream, ChannelPromise promise) {
        int n = data.readableBytes();
        s.sendWindow -= n;
        connSendWindow -= n;
        while (n > maxFrameSize) {
            ByteBuf header = ctx.alloc().buffer(9);
            frameHeader(header, maxFrameSize, DATA, 0, s.id);
            ctx.write(header, ctx.voidPromise());
            ctx.write(data.readRetainedSlice(maxFrameSize), ctx.voidPromise());
            n -= maxFrameSize;
        }
        int flags = endStream ? END_STREAM : 0;
        if (n <= COPY_BELOW) {
            ByteBuf frame = ctx.alloc().buffer(9 + n);
            frameHeader(frame, n, DATA, flags, s.id);
            frame.writeBytes(data, data.readerIndex(), n);
            data.release();
            ctx.write(frame, promise);
        } else {
            ByteBuf header = ctx.alloc().buffer(9);
            frameHeader(header, n, DATA, flags, s.id);
            ctx.write(header, ctx.voidPromise());
            ctx.write(data, promise);
        }
        if (endStream) {
            localEnd(s);
        }
    }

    /** Writes what {@code s} has queued while it can go: HEADERS at once, DATA as far as the send windows allow (split if need be). */
    private void drain(Stream s) {
        var q = s.queue;
        while (q != null && !q.isEmpty() && s.state != Http2Stream.State.CLOSED) {
            Object frame = q.peek();
            if (frame instanceof Http2DataFrame d && d.content().readableBytes() > Math.min(s.sendWindow, connSendWindow)) {
                int room = Math.min(s.sendWindow, connSendWindow);
                if (room > 0) { // part of it now
                    writeData(s, d.content().readRetainedSlice(room), false, ctx.voidPromise());
                    needsFlush = true;
                }
                if (!s.blocked) {
                    s.blocked = true;
                    blocked.add(s);
                }
                return;
            }
            q.poll();
            emit(s, frame, (ChannelPromise) q.poll());
            needsFlush = true;
        }
    }

    /** After the send windows grew: the blocked streams' DATA, in turn, while the connection's window lasts. */
    private void drainBlocked() {
        for (int n = blocked.size(); n > 0 && connSendWindow > 0; n--) {
            Stream s = blocked.poll();
            s.blocked = false;
            drain(s);
        }
        flushIfNeeded();
    }

    /** The relay has written {@code bytes} of {@code s}'s DATA on: they go back to the windows, announced when half a window is due. */
    private void consumed(Stream s, int bytes) {
        if (s.state == Http2Stream.State.CLOSED || s.id == 0 || bytes <= 0) {
            return; // a closed stream's bytes went back to the connection when it closed
        }
        bytes = Math.min(bytes, s.unconsumed);
        s.unconsumed -= bytes;
        s.toAck += bytes;
        if (s.toAck >= WINDOW / 2 && !s.remoteEnded) {
            windowUpdate(s.id, s.toAck);
            s.recvWindow += s.toAck;
            s.toAck = 0;
        }
        connectionConsumed(bytes);
    }

    private void connectionConsumed(int bytes) {
        connToAck += bytes;
        if (connToAck >= WINDOW / 2) {
            windowUpdate(0, connToAck);
            connRecvWindow += connToAck;
            connToAck = 0;
        }
    }

    /** A SETTINGS or PING acknowledgement; a server that keeps asking while it does not read what is sent ends the connection. */
    private void writeControl(ByteBuf frame) throws Http2Exception {
        if (outstandingControl >= MAX_OUTSTANDING_CONTROL) {
            ctx.flush();
            if (outstandingControl >= MAX_OUTSTANDING_CONTROL) {
                frame.release();
                throw Http2Exception.connectionError(Http2Error.ENHANCE_YOUR_CALM,
                        "HTTP/2 upstream: %d acknowledgements (SETTINGS, PING) not yet written, the server does not read them", outstandingControl);
            }
        }
        outstandingControl++;
        ctx.write(frame).addListener(controlWritten);
        needsFlush = true;
    }

    private void windowUpdate(int streamId, int increment) {
        ByteBuf buf = ctx.alloc().buffer(13);
        frameHeader(buf, 4, WINDOW_UPDATE, 0, streamId);
        buf.writeInt(increment);
        ctx.write(buf, ctx.voidPromise());
        needsFlush = true;
    }

    /** RST_STREAM from the relay: an open stream is reset and closed; a waiting one is dropped with its frames. */
    private void reset(Stream s, long errorCode, ChannelPromise promise) {
        if (s.waiting) {
            waiting.remove(s);
            s.waiting = false;
            s.state = Http2Stream.State.CLOSED;
            fail(s, new ClosedChannelException());
            promise.trySuccess();
            return;
        }
        if (s.id == 0 || s.state == Http2Stream.State.CLOSED) {
            s.state = Http2Stream.State.CLOSED;
            promise.trySuccess();
            return;
        }
        ByteBuf buf = ctx.alloc().buffer(13);
        frameHeader(buf, 4, RST_STREAM, 0, s.id);
        buf.writeInt((int) errorCode);
        ctx.write(buf, promise);
        close(s, true);
    }

    private void localEnd(Stream s) {
        s.localEnded = true;
        if (s.remoteEnded) {
            close(s, true);
        } else {
            s.state = Http2Stream.State.HALF_CLOSED_LOCAL;
        }
    }

    private void remoteEnd(Stream s) {
        s.remoteEnded = true;
        if (s.localEnded) {
            close(s, true);
        } else {
            s.state = Http2Stream.State.HALF_CLOSED_REMOTE;
        }
    }

    /** Closes an opened stream: its slot frees (a waiting stream takes it), its bytes not given back return to the connection. */
    private void close(Stream s, boolean announce) {
        boolean wasOpen = s.id != 0 && active.remove(s.id) != null;
        s.state = Http2Stream.State.CLOSED;
        if (s.queue != null && !s.queue.isEmpty()) { // an exception (its stack trace) only when a frame is left to fail
            fail(s, new ClosedChannelException());
        }
        if (s.unconsumed > 0) {
            int bytes = s.unconsumed;
            s.unconsumed = 0;
            connectionConsumed(bytes);
        }
        if (announce && wasOpen) {
            ctx.fireUserEventTriggered(new Closed(s));
        }
        openWaiting();
    }

    /** The waiting streams close without an id, their frames failed with {@code cause} (no {@link Closed} event: they never opened). */
    private void failWaiting(Throwable cause) {
        for (Stream s : waiting) {
            s.waiting = false;
            s.state = Http2Stream.State.CLOSED;
            fail(s, cause);
        }
        waiting.clear();
    }

    /** Fails the frames still queued on {@code s}, releasing their buffers. */
    private static void fail(Stream s, Throwable cause) {
        var q = s.queue;
        if (q == null) {
            return;
        }
        Object frame;
        while ((frame = q.poll()) != null) {
            io.netty.util.ReferenceCountUtil.release(frame);
            ((ChannelPromise) q.poll()).tryFailure(cause);
        }
    }

    /** Waiting streams open, in order, while the server's limit allows. */
    private void openWaiting() {
        while (!waiting.isEmpty() && active.size() < maxStreams && goAwayLastStreamId < 0 && ctx.channel().isActive()) {
            Stream s = waiting.poll();
            s.waiting = false;
            open(s);
            drain(s);
            needsFlush = true;
        }
    }

    private void flushIfNeeded() {
        if (needsFlush) {
            needsFlush = false;
            ctx.flush();
        }
    }

    // ---- what the server sends

    @Override
    protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
        try {
            reader.readFrame(ctx, in, listener);
        } catch (Http2Exception.StreamException e) {
            // the frame was read whole (the reader goes on with the next one): the stream is reset and
            // closed, so the relay sees it end as if the server had reset it
            Stream s = active.get(e.streamId());
            if (s != null) {
                reset(s, e.error().code(), ctx.newPromise());
                needsFlush = true;
            }
        } catch (Http2Exception e) {
            in.skipBytes(in.readableBytes());
            connectionError(e);
        } catch (RuntimeException e) {
            in.skipBytes(in.readableBytes());
            connectionError(Http2Exception.connectionError(Http2Error.INTERNAL_ERROR, e, "HTTP/2 upstream: %s", e.toString()));
        }
    }

    /** GOAWAY with the error, then the connection closes (its streams with it, in {@link #channelInactive}). */
    private void connectionError(Http2Exception e) {
        if (!goAwaySent && ctx.channel().isActive()) {
            goAwaySent = true;
            byte[] debug = String.valueOf(e.getMessage()).getBytes(java.nio.charset.StandardCharsets.UTF_8);
            int len = Math.min(debug.length, 256);
            ByteBuf buf = ctx.alloc().buffer(17 + len);
            frameHeader(buf, 8 + len, GOAWAY, 0, 0);
            buf.writeInt(0).writeInt((int) e.error().code()).writeBytes(debug, 0, len);
            ctx.writeAndFlush(buf);
        }
        ctx.fireExceptionCaught(e);
        ctx.close();
    }

    private final class Listener extends Http2FrameAdapter {
        private Stream stream(int streamId, String frame) throws Http2Exception {
            if (!settingsReceived) {
                throw Http2Exception.connectionError(Http2Error.PROTOCOL_ERROR, "HTTP/2 upstream: %s before the server's SETTINGS", frame);
            }
            Stream s = active.get(streamId);
            if (s == null && ((streamId & 1) == 0 || streamId > lastOpened)) {
                throw Http2Exception.connectionError(Http2Error.PROTOCOL_ERROR, "HTTP/2 upstream: %s on stream %d, which was never opened", frame,
                        streamId);
            }
            return s; // null: a stream closed already (reset by us, say); its frame is dropped
        }

        @Override
        public int onDataRead(ChannelHandlerContext ctx, int streamId, ByteBuf data, int padding, boolean endOfStream) throws Http2Exception {
            if (endOfStream || data.isReadable()) {
                emptyData = 0;
            } else if (++emptyData > MAX_EMPTY_DATA) {
                throw Http2Exception.connectionError(Http2Error.ENHANCE_YOUR_CALM, "HTTP/2 upstream: more than %d empty DATA frames in a row",
                        MAX_EMPTY_DATA);
            }
            int n = data.readableBytes() + padding;
            connRecvWindow -= n;
            if (connRecvWindow < 0) {
                throw Http2Exception.connectionError(Http2Error.FLOW_CONTROL_ERROR, "HTTP/2 upstream: DATA past the connection's window by %d bytes",
                        -connRecvWindow);
            }
            Stream s = stream(streamId, "DATA");
            if (s == null) {
                connectionConsumed(n);
                return n;
            }
            if (s.remoteEnded) {
                connectionConsumed(n);
                throw Http2Exception.streamError(streamId, Http2Error.STREAM_CLOSED, "HTTP/2 upstream: DATA after the end of stream %d", streamId);
            }
            s.recvWindow -= n;
            s.unconsumed += n;
            if (s.recvWindow < 0) {
                throw Http2Exception.streamError(streamId, Http2Error.FLOW_CONTROL_ERROR, "HTTP/2 upstream: DATA past stream %d's window", streamId);
            }
            ctx.fireChannelRead(new DefaultHttp2DataFrame(data.retain(), endOfStream, padding).stream(s));
            if (endOfStream && s.state != Http2Stream.State.CLOSED) {
                remoteEnd(s);
            }
            return n;
        }

        @Override
        public void onHeadersRead(ChannelHandlerContext ctx, int streamId, Http2Headers headers, int padding, boolean endOfStream)
                throws Http2Exception {
            emptyData = 0;
            Stream s = stream(streamId, "HEADERS");
            if (s == null) {
                return;
            }
            if (s.remoteEnded) {
                throw Http2Exception.streamError(streamId, Http2Error.STREAM_CLOSED, "HTTP/2 upstream: HEADERS after the end of stream %d", streamId);
            }
            ctx.fireChannelRead(new DefaultHttp2HeadersFrame(headers, endOfStream, padding).stream(s));
            if (endOfStream && s.state != Http2Stream.State.CLOSED) {
                remoteEnd(s);
            }
        }

        @Override
        public void onHeadersRead(ChannelHandlerContext ctx, int streamId, Http2Headers headers, int streamDependency, short weight,
                boolean exclusive, int padding, boolean endOfStream) throws Http2Exception {
            onHeadersRead(ctx, streamId, headers, padding, endOfStream);
        }

        @Override
        public void onRstStreamRead(ChannelHandlerContext ctx, int streamId, long errorCode) throws Http2Exception {
            Stream s = stream(streamId, "RST_STREAM");
            if (s == null) {
                return;
            }
            s.state = Http2Stream.State.CLOSED; // before the relay sees it: nothing is reset back
            ctx.fireChannelRead(new DefaultHttp2ResetFrame(errorCode).stream(s));
            close(s, true);
        }

        @Override
        public void onSettingsRead(ChannelHandlerContext ctx, Http2Settings settings) throws Http2Exception {
            boolean first = !settingsReceived;
            settingsReceived = true;
            Long max = settings.maxConcurrentStreams();
            if (max != null) {
                maxStreams = max;
            } else if (first) {
                maxStreams = Integer.MAX_VALUE; // RFC 9113: unlimited until the server sets it
            }
            Integer window = settings.initialWindowSize();
            if (window != null) {
                int delta = window - peerInitialWindow;
                peerInitialWindow = window;
                for (Stream s : active.values()) {
                    if ((long) s.sendWindow + delta > Integer.MAX_VALUE) {
                        throw Http2Exception.connectionError(Http2Error.FLOW_CONTROL_ERROR, "HTTP/2 upstream: SETTINGS_INITIAL_WINDOW_SIZE overflows %s",
                                s);
                    }
                    s.sendWindow += delta;
                    if (delta > 0 && s.queue != null && !s.queue.isEmpty() && !s.blocked) {
                        s.blocked = true;
                        blocked.add(s);
                    }
                }
            }
            Integer frameSize = settings.maxFrameSize();
            if (frameSize != null) {
                maxFrameSize = frameSize;
            }
            Long tableSize = settings.headerTableSize();
            if (tableSize != null) {
                encoder.configuration().maxHeaderTableSize(tableSize);
            }
            Long listSize = settings.maxHeaderListSize();
            if (listSize != null) {
                encoder.configuration().maxHeaderListSize(listSize);
            }
            ByteBuf ack = ctx.alloc().buffer(9);
            frameHeader(ack, 0, SETTINGS, ACK, 0);
            writeControl(ack);
            openWaiting();
            drainBlocked();
        }

        @Override
        public void onPingRead(ChannelHandlerContext ctx, long data) throws Http2Exception {
            ByteBuf pong = ctx.alloc().buffer(17);
            frameHeader(pong, 8, PING, ACK, 0);
            pong.writeLong(data);
            writeControl(pong);
        }

        @Override
        public void onGoAwayRead(ChannelHandlerContext ctx, int lastStreamId, long errorCode, ByteBuf debugData) {
            goingAway(lastStreamId, errorCode, "HTTP/2 upstream: GOAWAY received, stream not sent");
        }

        @Override
        public void onWindowUpdateRead(ChannelHandlerContext ctx, int streamId, int increment) throws Http2Exception {
            if (streamId == 0) {
                if ((long) connSendWindow + increment > Integer.MAX_VALUE) {
                    throw Http2Exception.connectionError(Http2Error.FLOW_CONTROL_ERROR, "HTTP/2 upstream: the connection's send window overflows");
                }
                connSendWindow += increment;
                drainBlocked();
                return;
            }
            Stream s = stream(streamId, "WINDOW_UPDATE");
            if (s == null) {
                return;
            }
            if ((long) s.sendWindow + increment > Integer.MAX_VALUE) {
                throw Http2Exception.streamError(streamId, Http2Error.FLOW_CONTROL_ERROR, "HTTP/2 upstream: stream %d's send window overflows", streamId);
            }
            s.sendWindow += increment;
            if (s.queue != null && !s.queue.isEmpty()) {
                drain(s);
                flushIfNeeded();
            }
        }

        @Override
        public void onPushPromiseRead(ChannelHandlerContext ctx, int streamId, int promisedStreamId, Http2Headers headers, int padding)
                throws Http2Exception {
            throw Http2Exception.connectionError(Http2Error.PROTOCOL_ERROR, "HTTP/2 upstream: PUSH_PROMISE, though SETTINGS_ENABLE_PUSH is 0");
        }
    }

    @Override
    public void channelReadComplete(ChannelHandlerContext ctx) throws Exception {
        flushIfNeeded();
        super.channelReadComplete(ctx);
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) throws Exception {
        failWaiting(new ClosedChannelException());
        for (Stream s : new ArrayList<>(active.values())) {
            close(s, true);
        }
        super.channelInactive(ctx);
    }

    @Override
    protected void handlerRemoved0(ChannelHandlerContext ctx) {
        reader.close();
    }

    // ---- the rest of the outbound operations pass through

    @Override
    public void bind(ChannelHandlerContext ctx, SocketAddress localAddress, ChannelPromise promise) {
        ctx.bind(localAddress, promise);
    }

    @Override
    public void connect(ChannelHandlerContext ctx, SocketAddress remoteAddress, SocketAddress localAddress, ChannelPromise promise) {
        ctx.connect(remoteAddress, localAddress, promise);
    }

    @Override
    public void disconnect(ChannelHandlerContext ctx, ChannelPromise promise) {
        ctx.disconnect(promise);
    }

    /** A GOAWAY (no error) goes out first, as Netty's codec sends one. */
    @Override
    public void close(ChannelHandlerContext ctx, ChannelPromise promise) {
        if (!goAwaySent && ctx.channel().isActive()) {
            goAwaySent = true;
            ByteBuf buf = ctx.alloc().buffer(17);
            frameHeader(buf, 8, GOAWAY, 0, 0);
            buf.writeInt(0).writeInt((int) Http2Error.NO_ERROR.code());
            ctx.writeAndFlush(buf);
        }
        ctx.close(promise);
    }

    @Override
    public void deregister(ChannelHandlerContext ctx, ChannelPromise promise) {
        ctx.deregister(promise);
    }

    @Override
    public void read(ChannelHandlerContext ctx) {
        ctx.read();
    }

    @Override
    public void flush(ChannelHandlerContext ctx) {
        needsFlush = false;
        ctx.flush();
    }
}
