package dev.isthmus.proxy.http;

import dev.isthmus.proxy.config.xds.ProxyConfig;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.EventLoop;
import io.netty.handler.codec.ByteToMessageDecoder;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http2.DefaultHttp2DataFrame;
import io.netty.handler.codec.http2.DefaultHttp2Headers;
import io.netty.handler.codec.http2.DefaultHttp2HeadersFrame;
import io.netty.handler.codec.http2.DefaultHttp2ResetFrame;
import io.netty.handler.codec.http2.DefaultHttp2WindowUpdateFrame;
import io.netty.handler.codec.http2.Http2DataFrame;
import io.netty.handler.codec.http2.Http2Error;
import io.netty.handler.codec.http2.Http2FrameCodecBuilder;
import io.netty.handler.codec.http2.Http2FrameStream;
import io.netty.handler.codec.http2.Http2FrameStreamEvent;
import io.netty.handler.codec.http2.Http2Headers;
import io.netty.handler.codec.http2.Http2HeadersFrame;
import io.netty.handler.codec.http2.Http2ResetFrame;
import io.netty.handler.codec.http2.Http2Stream;
import io.netty.util.ReferenceCountUtil;
import java.net.InetSocketAddress;
import java.nio.charset.StandardCharsets;
import java.util.ArrayDeque;
import java.util.ArrayList;
import java.util.IdentityHashMap;
import java.util.LinkedHashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ConcurrentHashMap;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

/**
 * HTTP/2 through the proxy, stream by stream: a listener that sees the HTTP/2 connection preface
 * (h2c with prior knowledge, as gRPC clients send it, or the same over the sidecars' mTLS) switches
 * that connection to HTTP/2; each stream is routed like an HTTP/1.1 request (by {@code :authority}
 * and {@code :path}) to a cluster whose upstream speaks HTTP/2 (an {@code HttpProtocolOptions} with
 * {@code http2_protocol_options}), over one multiplexed connection per endpoint, and its frames are
 * relayed both ways as they come: headers, data, trailers (gRPC status), resets. Streaming calls
 * keep streaming. The caller-identity header is handled as for HTTP/1.1. A stream to a cluster
 * that speaks HTTP/1.1 is translated ({@link Http1Bridge}): gathered whole (at most 1 MiB of body,
 * else 413), sent as one request, its answer sent back as the stream's frames. Netty's limit on resets
 * per connection (rapid reset) is enforced: more than 200 in 30 s closes the connection.
 *
 * <p>The relay works on the frames of both connections' codecs directly (a stream is an id and a
 * little state, not a channel of its own), and writes of one read are flushed together when the
 * read completes: one write to the socket per batch, not per frame. A caller's DATA is given back to
 * its flow-control window once it is written upstream (and the other way round), so a slow reader
 * holds back its writer. Streams beyond the upstream's concurrency limit wait in the codec.
 */
final class Http2Relay {

    private static final Logger log = LoggerFactory.getLogger(Http2Relay.class);
    private static final byte[] PREFACE = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".getBytes(StandardCharsets.US_ASCII);
    /** Header names as Netty's AsciiStrings, whose hash is computed once: a String's is computed again on every lookup in Netty's headers. */
    private static final io.netty.util.AsciiString[] CONNECTION_SPECIFIC = {HttpHeaderNames.CONNECTION, HttpHeaderNames.KEEP_ALIVE,
        HttpHeaderNames.PROXY_CONNECTION, HttpHeaderNames.TRANSFER_ENCODING, HttpHeaderNames.UPGRADE};
    private static final io.netty.util.AsciiString TE = HttpHeaderNames.TE;
    private static final io.netty.util.AsciiString CALLER = io.netty.util.AsciiString.cached(HttpProxy.CALLER_HEADER);
    /**
     * How much of a request is kept to send it again after its upstream stream failed (reset, 5xx, a
     * retriable gRPC status, refused); a longer request is not sent again once sent (Envoy's
     * per-request buffer).
     */
    static final int RETRY_BUFFER_BYTES = 64 * 1024;
    /**
     * How often a stream the upstream refused (RST_STREAM REFUSED_STREAM, or past a GOAWAY's last
     * stream: RFC 9113 says it was not processed) is sent again when the route's retry policy does
     * not retry it, as gRPC's transparent retry does; outside {@code num_retries} and the retry budget.
     */
    static final int MAX_REFUSED_RESENDS = 3;
    private static final Map<EventLoop, Map<HttpProxy.PoolKey, List<Channel>>> CONNECTIONS = new ConcurrentHashMap<>();
    /**
     * An upstream connection without a stream for this long is closed (checked every half of it):
     * servers that never close idle connections (grpc-java's default) would otherwise keep them as
     * long as the proxy runs. Envoy's default is an hour.
     */
    static volatile long idleNanos = java.util.concurrent.TimeUnit.SECONDS.toNanos(60);
    /**
     * An upstream connection at its server's SETTINGS_MAX_CONCURRENT_STREAMS on which no stream has
     * ended for this long is stalled (its streams are long-lived: watches, streaming calls): new
     * streams go on another connection, and those waiting in its codec are moved there.
     */
    static volatile long stallNanos = java.util.concurrent.TimeUnit.MILLISECONDS.toNanos(250);

    private Http2Relay() {
    }

    /** First on a connection: HTTP/2 preface → the HTTP/2 pipeline; anything else → leaves the HTTP/1.1 pipeline as it is. */
    static final class PrefaceSniffer extends ByteToMessageDecoder {
        private final HttpProxy.Shared shared;

        PrefaceSniffer(HttpProxy.Shared shared) {
            this.shared = shared;
        }

        @Override
        protected void decode(ChannelHandlerContext ctx, ByteBuf in, List<Object> out) {
            int n = Math.min(in.readableBytes(), PREFACE.length);
            for (int i = 0; i < n; i++) {
                if (in.getByte(in.readerIndex() + i) != PREFACE[i]) {
                    ctx.pipeline().remove(this); // HTTP/1.1: the bytes go on to its decoder
                    return;
                }
            }
            if (n < PREFACE.length) {
                return; // wait for more
            }
            var p = ctx.pipeline();
            for (String h : List.of("guard", "decoder", "encoder", "aggregator", "proxy")) {
                if (p.get(h) != null) {
                    p.remove(h);
                }
            }
            p.addAfter(ctx.name(), "h2", Http2FrameCodecBuilder.forServer().validateHeaders(true)
                    .decoderEnforceMaxRstFramesPerWindow(200, 30).build());
            p.addAfter("h2", "h2-relay", new Front(shared, HttpProxy.callerOf(ctx.channel())));
            p.remove(this);
        }
    }

    /** Flushes, at the end of a read, the connections that read wrote to. */
    private static final class Flusher {
        private final Set<Channel> pending = new LinkedHashSet<>();

        void mark(Channel ch) {
            pending.add(ch);
        }

        void flush() {
            if (!pending.isEmpty()) {
                for (Channel ch : pending) {
                    ch.flush();
                }
                pending.clear();
            }
        }
    }

    /**
     * One connection's side of the calls (the caller's or the upstream's): its calls by stream, what
     * its reads wrote elsewhere, and what ends a call when one of its streams or the connection closes.
     */
    private static final class Streams {
        final Map<Http2FrameStream, Call> calls = new IdentityHashMap<>();
        final Flusher flusher = new Flusher();
        private final java.util.function.Consumer<Call> closed;

        Streams(java.util.function.Consumer<Call> closed) {
            this.closed = closed;
        }

        /** A DATA frame of a stream without a call: its bytes go back to the window, the frame is dropped. */
        void orphan(Channel ch, Http2DataFrame data) {
            giveBack(ch, data);
            data.release();
        }

        void readComplete(ChannelHandlerContext ctx) {
            flusher.flush();
            ctx.flush();
        }

        /** Ends the call of a stream that closed (an event of either side's codec); false when {@code evt} is not such an event. */
        boolean streamClosed(Object evt) {
            Http2FrameStream stream = evt instanceof Http2FrameStreamEvent e && e.stream().state() == Http2Stream.State.CLOSED ? e.stream()
                    : evt instanceof Http2Upstream.Closed c ? c.stream() : null;
            if (stream != null) {
                Call call = calls.remove(stream);
                if (call != null) {
                    closed.accept(call);
                }
                return true;
            }
            return false;
        }

        void connectionClosed() {
            for (Call call : new ArrayList<>(calls.values())) {
                closed.accept(call);
            }
            calls.clear();
            flusher.flush();
        }
    }

    /** The handler of one HTTP/2 connection of the relay, after its frame codec: what both sides do alike. */
    private abstract static class Side extends io.netty.channel.ChannelDuplexHandler {
        final Streams streams;

        Side(java.util.function.Consumer<Call> closed) {
            streams = new Streams(closed);
        }

        @Override
        public void channelReadComplete(ChannelHandlerContext ctx) {
            streams.readComplete(ctx);
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
            if (!streams.streamClosed(evt)) {
                ctx.fireUserEventTriggered(evt);
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            streams.connectionClosed();
        }
    }

    /** A caller's HTTP/2 connection: its streams, each a {@link Call}. */
    private static final class Front extends Side {
        private final HttpProxy.Shared shared;
        private final String caller;
        private final Flusher flusher = streams.flusher;
        private final Map<Http2FrameStream, Call> calls = streams.calls;
        private Channel channel;

        Front(HttpProxy.Shared shared, String caller) {
            super(Call::downstreamClosed);
            this.shared = shared;
            this.caller = caller;
        }

        @Override
        public void handlerAdded(ChannelHandlerContext ctx) {
            channel = ctx.channel();
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (msg instanceof Http2HeadersFrame headers) {
                Call call = calls.get(headers.stream());
                if (call == null) {
                    call = new Call(this, headers.stream());
                    calls.put(headers.stream(), call);
                    call.open(headers);
                } else {
                    call.toUpstream(new DefaultHttp2HeadersFrame(headers.headers(), headers.isEndStream(), headers.padding()));
                }
            } else if (msg instanceof Http2DataFrame data) {
                Call call = calls.get(data.stream());
                if (call == null) {
                    streams.orphan(ctx.channel(), data);
                } else {
                    call.dataToUpstream(data);
                }
            } else if (msg instanceof Http2ResetFrame reset) {
                Call call = calls.get(reset.stream());
                if (call != null) {
                    call.resetUpstream(reset.errorCode());
                }
            } else {
                ReferenceCountUtil.release(msg); // settings, pings, GOAWAY: the codec has answered them
            }
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            log.debug("event=h2_connection_closed listener={} cause={}", shared.listener(), cause.toString());
            ctx.close();
        }
    }

    /** An upstream HTTP/2 connection, after its {@link Http2Upstream}: the calls riding on it, by their upstream stream. */
    private static final class Back extends Side {
        private final Flusher flusher = streams.flusher;
        private final Map<Http2FrameStream, Call> calls = streams.calls;
        /** Calls that chose this connection and wait for it to connect. */
        int pending;
        io.netty.channel.ChannelFuture connecting;
        /** When the last stream was given to it (its call's start). */
        long lastUsed = System.nanoTime();
        /** When a stream of this connection last ended (or the connection was made). */
        long lastEnded = System.nanoTime();
        /** The pending check for streams waiting in the codec behind long-lived ones ({@link #checkStall}). */
        io.netty.util.concurrent.ScheduledFuture<?> stallCheck;
        private ChannelHandlerContext ctx;
        private Http2Upstream codec;

        Back() {
            super(Call::upstreamClosed);
        }

        @Override
        public void handlerAdded(ChannelHandlerContext ctx) {
            this.ctx = ctx;
            codec = ctx.pipeline().get(Http2Upstream.class);
        }

        Http2Upstream.Stream newStream() {
            return codec.newStream();
        }

        @Override
        public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
            if (evt instanceof Http2Upstream.Closed) {
                lastEnded = System.nanoTime();
            } else if (evt instanceof Http2Upstream.GoAway goAway) {
                log.debug("event=h2_upstream_goaway remote={} last_stream_id={} error_code={}", ctx.channel().remoteAddress(), goAway.lastStreamId(),
                        goAway.errorCode());
                return;
            }
            super.userEventTriggered(ctx, evt);
        }

        /** More calls than the server lets run at once: some wait in the codec. */
        boolean overLimit() {
            return calls.size() + pending > codec.maxStreams();
        }

        /** At the server's limit with no stream ended for {@link #stallNanos}: new streams should go elsewhere. */
        boolean stalled(long now) {
            return calls.size() >= codec.maxStreams() && now - lastEnded >= stallNanos;
        }

        /** Checks, after {@link #stallNanos}, whether calls still wait in the codec behind streams that do not end. */
        void watchStall() {
            if (stallCheck == null && ctx != null) {
                stallCheck = ctx.executor().schedule(this::checkStall, stallNanos, java.util.concurrent.TimeUnit.NANOSECONDS);
            }
        }

        /**
         * Calls whose streams still wait in the codec (not yet sent: no stream of the connection ended
         * for {@link #stallNanos}) are taken off and sent again, on another connection; while calls
         * wait and streams do end, checked again later.
         */
        private void checkStall() {
            stallCheck = null;
            if (!ctx.channel().isActive() || goingAway()) {
                return;
            }
            var waiting = new ArrayList<Call>();
            for (Call call : calls.values()) {
                if (call.waitsInCodec()) {
                    waiting.add(call);
                }
            }
            if (waiting.isEmpty()) {
                return;
            }
            if (!stalled(System.nanoTime())) {
                watchStall();
                return;
            }
            log.debug("event=h2_upstream_stalled remote={} streams={} waiting={}", ctx.channel().remoteAddress(), calls.size() - waiting.size(),
                    waiting.size());
            for (Call call : waiting) {
                call.moveOff();
            }
        }

        /** Takes a stream that waits in the codec out of it (its headers were never sent). */
        void dropWaiting(Http2FrameStream stream) {
            ctx.write(new DefaultHttp2ResetFrame(Http2Error.CANCEL).stream(stream));
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            if (msg instanceof Http2HeadersFrame headers) {
                Call call = calls.get(headers.stream());
                if (call != null) {
                    call.headersFromUpstream(headers);
                }
            } else if (msg instanceof Http2DataFrame data) {
                Call call = calls.get(data.stream());
                if (call == null) {
                    streams.orphan(ctx.channel(), data);
                } else {
                    call.dataFromUpstream(data);
                }
            } else if (msg instanceof Http2ResetFrame reset) {
                Call call = calls.get(reset.stream());
                if (call != null) {
                    call.upstreamReset(reset.errorCode());
                }
            } else {
                ReferenceCountUtil.release(msg);
            }
        }

        /** No new stream may go on this connection: the server sent GOAWAY (or its stream ids ran out), as its codec knows. */
        boolean goingAway() {
            return codec.goAwayLastStreamId() >= 0;
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            log.debug("event=h2_upstream_closed cause={}", cause.toString());
            ctx.close();
        }
    }

    /** Gives a DATA frame's bytes back to the flow-control window of the connection it came on. */
    private static void giveBack(Channel ch, Http2DataFrame data) {
        int bytes = data.initialFlowControlledBytes();
        if (bytes > 0 && data.stream() != null && data.stream().state() != Http2Stream.State.CLOSED && ch.isActive()) {
            ch.write(new DefaultHttp2WindowUpdateFrame(bytes).stream(data.stream()));
        }
    }

    /** One caller stream and, once routed, its upstream stream. */
    private static final class Call {
        private final Front front;
        private final Http2FrameStream down;
        private final long start = System.nanoTime();
        private final ArrayDeque<Object> waiting = new ArrayDeque<>(4);
        private HttpProxy.Upstream cluster;
        private InetSocketAddress endpoint;
        private Channel backChannel;
        private Back back;
        private Http2Upstream.Stream up;
        private String status = "0";
        private boolean counted;
        private boolean downDone;
        private boolean upDone;
        private boolean released;
        /** The upstream's end of stream has been passed to the caller (its write may still wait for flow control). */
        private boolean responseEnded;
        /** An HTTP/1.1 cluster: the stream is gathered whole and sent as one request ({@link Http1Bridge}). */
        private boolean h1;
        private Http2Headers h1Headers;
        private io.netty.buffer.CompositeByteBuf h1Body;
        /** The translated request, kept until it is answered. */
        private io.netty.handler.codec.http.FullHttpRequest h1Request;
        private java.time.Duration h1Timeout = java.time.Duration.ZERO;
        /** The route's timeout, from the caller's end of stream to the upstream's (zero: none). */
        private java.time.Duration timeout = java.time.Duration.ZERO;
        private Deadlines.Timeout timer;
        /** Holds one of the cluster's {@code max_requests} slots. */
        private boolean holdsRequest;
        /** Retry slots held (connect failures retried on another endpoint). */
        private int heldRetries;
        private ProxyConfig.RetrySpec retry = ProxyConfig.RetrySpec.NONE;
        /** The endpoints whose connection or stream failed, made at the first failure. */
        private Set<InetSocketAddress> tried;
        /**
         * The request's frames as sent upstream, kept to send them again (a retry, or a stream the
         * upstream did not process) until the answer's headers come; null for an HTTP/1.1-bound
         * stream, or once the request outgrew {@link #RETRY_BUFFER_BYTES}.
         */
        private ArrayList<Object> sent;
        private int sentBytes;
        private boolean idempotent;
        /** Frames written to the current upstream stream. */
        private int framesUp;
        /** Times the stream was sent again after a refusal the route's policy does not retry ({@link #MAX_REFUSED_RESENDS}). */
        private int refusedResends;

        Call(Front front, Http2FrameStream down) {
            this.front = front;
            this.down = down;
        }

        void open(Http2HeadersFrame headers) {
            var shared = front.shared;
            Http2Headers h = headers.headers();
            String path = h.path() == null ? "/" : h.path().toString();
            int q = path.indexOf('?');
            if (!shared.permits(front.caller, h.method() == null ? "" : h.method().toString(), q >= 0 ? path.substring(0, q) : path)) {
                answer("403", "rbac_denied");
                return;
            }
            var route = shared.route(h.authority() == null ? "" : h.authority().toString(), q >= 0 ? path.substring(0, q) : path, name -> {
                CharSequence v = h.get(name);
                return v == null ? null : v.toString();
            });
            if (route.isEmpty()) {
                answer("404", "no_route");
                return;
            }
            String name = route.get().pickCluster();
            cluster = shared.clusters().apply(name);
            if (cluster == null) {
                answer("502", "no_healthy_upstream");
                return;
            }
            if (cluster.endpoints().dropped() != null) {
                answer("503", "drop_overload");
                return;
            }
            String breaker = cluster.breakers().tryRequest();
            if (breaker != null) {
                overloaded(breaker);
                return;
            }
            holdsRequest = true;
            h1 = !cluster.http2();
            var picked = cluster.endpoints().pick(Set.of());
            if (picked.isEmpty()) {
                answer("503", "no_healthy_upstream");
                return;
            }
            endpoint = picked.get();
            // the caller's headers go upstream as they came (names are lowercase: the codec validates
            // them), less what must not be passed on; no copy, no per-header strings
            Http2Headers out = h;
            for (var hopByHop : CONNECTION_SPECIFIC) {
                out.remove(hopByHop);
            }
            CharSequence te = out.get(TE);
            if (te != null && !"trailers".contentEquals(te)) {
                out.remove(TE);
            }
            out.remove(CALLER);
            if (!front.caller.isEmpty()) {
                out.set(CALLER, front.caller);
            }
            retry = route.get().retry();
            idempotent = h.method() != null && HttpProxy.IDEMPOTENT.contains(io.netty.handler.codec.http.HttpMethod.valueOf(h.method().toString()));
            if (h1) {
                out.remove(TE);
                h1Headers = out;
                h1Timeout = route.get().timeout();
                if (headers.isEndStream()) {
                    sendH1();
                }
                return;
            }
            timeout = route.get().timeout();
            sent = new ArrayList<>(2);
            waiting.add(new DefaultHttp2HeadersFrame(out, headers.isEndStream()));
            if (headers.isEndStream()) {
                requestEnded();
            }
            connectUpstream();
        }

        /** The stream to {@link #endpoint}, over the cluster's connection there (made if there is none); the caller's frames wait until then. */
        private void connectUpstream() {
            var connecting = connection(front.channel.eventLoop(), front.shared.loops().channelType(), endpoint, cluster);
            if (connecting == null) {
                overloaded("max_connections");
                return;
            }
            InetSocketAddress target = endpoint;
            connecting.addListener((ChannelFutureListener) f -> {
                var chosen = f.channel().pipeline().get(Back.class);
                if (chosen != null) {
                    chosen.pending--;
                }
                if (downDone || counted) { // the caller went away, or was answered (timeout) while connecting
                    drop();
                    return;
                }
                if (!f.isSuccess()) {
                    connectFailed(target, f.cause());
                    return;
                }
                backChannel = f.channel();
                back = backChannel.pipeline().get(Back.class);
                if (back == null) {
                    answer("503", "upstream_reset");
                    front.channel.flush();
                    return;
                }
                up = back.newStream();
                back.calls.put(up, this);
                back.lastUsed = start;
                released = false;
                framesUp = 0;
                cluster.endpoints().connected(endpoint);
                Object m;
                while ((m = waiting.poll()) != null) {
                    write(m);
                }
                backChannel.flush();
            });
        }

        /**
         * No connection to the endpoint: it is ejected (at once when nothing listens there), and the
         * stream goes to another endpoint if the route retries connect failures (its retry_on has
         * connect-failure, reset, 5xx or gateway-error) and the retry budget allows. Any method is
         * retried here: nothing of the stream has left the proxy yet, its frames are still held.
         */
        private void connectFailed(InetSocketAddress target, Throwable cause) {
            ejectAfterConnectFailure(target, cause);
            if (nextEndpoint(retry.retries("connect-failure", 0))) {
                connectUpstream();
                front.channel.flush();
                return;
            }
            answer("503", "upstream_connect_failure");
            front.channel.flush();
        }

        /** A connect failure: the endpoint is ejected (at once when nothing listens there) and not tried again for this stream. */
        private void ejectAfterConnectFailure(InetSocketAddress target, Throwable cause) {
            if (dev.isthmus.proxy.tcp.UpstreamSelector.definitive(cause)) {
                cluster.endpoints().refused(target);
            } else {
                cluster.endpoints().failed(target);
            }
            log.debug("event=h2_upstream_connect_failed cluster={} endpoint={} cause={}", cluster.name(), target, String.valueOf(cause));
            if (tried == null) {
                tried = new java.util.HashSet<>(4);
            }
            tried.add(target);
        }

        /**
         * After a failure: true, with {@link #endpoint} set to another endpoint, when the route
         * retries it ({@code wanted}), {@code num_retries} is not used up, the retry budget allows,
         * and an endpoint not tried yet is left.
         */
        private boolean nextEndpoint(boolean wanted) {
            if (wanted && tried.size() <= retry.numRetries()) {
                var next = cluster.endpoints().pick(tried);
                if (next.isPresent()) {
                    String refused = cluster.breakers().tryRetry();
                    if (refused == null) {
                        heldRetries++;
                        endpoint = next.get();
                        io.micrometer.core.instrument.Counter.builder(dev.isthmus.proxy.ProxyMetrics.UPSTREAM_RETRIES)
                                .tag(dev.isthmus.proxy.ProxyMetrics.LABEL_LISTENER, front.shared.listener()).register(front.shared.meters()).increment();
                        return true;
                    }
                    io.micrometer.core.instrument.Counter.builder("isthmus_retries_refused")
                            .tag(dev.isthmus.proxy.ProxyMetrics.LABEL_LISTENER, front.shared.listener())
                            .tag(dev.isthmus.proxy.ProxyMetrics.LABEL_REASON, refused).register(front.shared.meters()).increment();
                }
            }
            return false;
        }

        /**
         * Writes a frame of the caller's to the upstream stream; its DATA goes back to the caller's
         * window once written (a frame sent again after a retry was given back the first time). A copy
         * is kept for a retry while the request fits {@link #RETRY_BUFFER_BYTES}.
         */
        private void write(Object frame) {
            if (frame instanceof DefaultHttp2HeadersFrame h) {
                if (sent != null) {
                    sent.add(new DefaultHttp2HeadersFrame(h.headers(), h.isEndStream(), h.padding()));
                }
                var stream = up;
                String lost = framesUp++ == 0 ? "refused-stream" : "reset"; // its first frame lost: nothing of it reached the upstream
                backChannel.write(h.stream(up)).addListener(f -> upstreamWriteFailed(f, stream, lost));
            } else if (frame instanceof Http2DataFrame d) {
                if (sent != null) {
                    sentBytes += d.content().readableBytes();
                    if (sentBytes > RETRY_BUFFER_BYTES) {
                        dropSent();
                    } else {
                        sent.add(new DefaultHttp2DataFrame(d.content().retainedDuplicate(), d.isEndStream(), d.padding()));
                    }
                }
                var stream = up;
                framesUp++;
                var copy = new DefaultHttp2DataFrame(d.content(), d.isEndStream(), d.padding()).stream(up);
                int bytes = d.initialFlowControlledBytes();
                backChannel.write(copy).addListener((ChannelFutureListener) f -> {
                    if (f.isSuccess()) {
                        if (bytes > 0 && down.state() != Http2Stream.State.CLOSED && front.channel.isActive()) {
                            front.channel.writeAndFlush(new DefaultHttp2WindowUpdateFrame(bytes).stream(down));
                        }
                    } else {
                        upstreamWriteFailed(f, stream, "reset");
                    }
                });
            }
        }

        /**
         * A frame could not be written to {@code stream} (its connection closed under it): before any
         * answer the request may go elsewhere, as a refused stream when its first frame was lost
         * (nothing reached the upstream), as a reset otherwise; else the caller's stream is reset.
         * Later failures of the same stream are ignored.
         */
        private void upstreamWriteFailed(io.netty.util.concurrent.Future<? super Void> f, Http2FrameStream stream, String condition) {
            if (f.isSuccess() || stream != up) {
                return;
            }
            log.debug("event=h2_upstream_write_failed cause={}", String.valueOf(f.cause()));
            if (status.equals("0") && (retryStream(condition, 0) || condition.equals("refused-stream") && resendRefused())) {
                return;
            }
            resetDownstream(Http2Error.REFUSED_STREAM.code());
        }

        void toUpstream(DefaultHttp2HeadersFrame trailers) {
            if (h1) {
                if (trailers.isEndStream() && h1Headers != null) {
                    sendH1(); // HTTP/1.1 requests carry no trailers here
                }
                return;
            }
            if (trailers.isEndStream()) {
                requestEnded();
            }
            if (up == null) {
                waiting.add(trailers);
            } else if (!upDone) {
                write(trailers);
                front.flusher.mark(backChannel);
            }
        }

        void dataToUpstream(Http2DataFrame data) {
            if (h1) {
                if (h1Headers == null || downDone) {
                    giveBack(front.channel, data);
                    front.flusher.mark(front.channel);
                    data.release();
                    return;
                }
                if (h1Body == null) {
                    h1Body = front.channel.alloc().compositeBuffer();
                }
                h1Body.addComponent(true, data.content().retain());
                giveBack(front.channel, data);
                front.flusher.mark(front.channel);
                data.release();
                if (h1Body.readableBytes() > HttpProxy.MAX_BODY) {
                    answer("413", "request_body_too_large");
                    resetUpstreamless();
                } else if (data.isEndStream()) {
                    sendH1();
                }
                return;
            }
            if (cluster == null || downDone || upDone && up != null) {
                giveBack(front.channel, data);
                data.release();
                return;
            }
            if (data.isEndStream()) {
                requestEnded();
            }
            if (up == null) {
                waiting.add(data); // held (with its buffer) until the upstream stream exists
            } else {
                write(data);
                front.flusher.mark(backChannel);
            }
        }

        void headersFromUpstream(Http2HeadersFrame frame) {
            if (frame.headers().status() != null) {
                status = frame.headers().status().toString();
                if (status.startsWith("5")) {
                    cluster.endpoints().failed(endpoint);
                } else {
                    cluster.endpoints().succeeded(endpoint);
                }
                if (sent != null && !status.startsWith("1")) {
                    String condition = status.startsWith("5") ? "5xx" : frame.isEndStream() ? grpcCondition(frame.headers()) : null;
                    if (condition != null && retryStream(condition, Integer.parseInt(status))) {
                        return;
                    }
                    dropSent(); // answered: nothing will be sent again
                }
            }
            frame.headers().remove(CALLER);
            if (downDone) {
                return;
            }
            responseEnded |= frame.isEndStream();
            var written = front.channel.write(new DefaultHttp2HeadersFrame(frame.headers(), frame.isEndStream(), frame.padding()).stream(down));
            if (responseEnded) {
                count(); // answered in full: counted now, not when the caller's stream has closed (after the write)
                stopRequest(written);
            }
            back.flusher.mark(front.channel);
        }

        void dataFromUpstream(Http2DataFrame data) {
            if (downDone) {
                giveBack(backChannel, data);
                data.release();
                return;
            }
            int bytes = data.initialFlowControlledBytes();
            Http2FrameStream upstream = up;
            responseEnded |= data.isEndStream();
            if (responseEnded) {
                count();
            }
            var written = front.channel.write(new DefaultHttp2DataFrame(data.content(), data.isEndStream(), data.padding()).stream(down))
                    .addListener((ChannelFutureListener) f -> {
                        if (bytes > 0 && upstream.state() != Http2Stream.State.CLOSED && backChannel.isActive()) {
                            backChannel.writeAndFlush(new DefaultHttp2WindowUpdateFrame(bytes).stream(upstream));
                        }
                    });
            if (data.isEndStream()) {
                stopRequest(written);
            }
            back.flusher.mark(front.channel);
        }

        void resetUpstream(long errorCode) {
            if (up != null && !upDone && backChannel.isActive()) {
                backChannel.writeAndFlush(new DefaultHttp2ResetFrame(errorCode).stream(up));
            }
            drop();
        }

        /** The upstream reset its stream: before any answer it may be sent elsewhere, else the reset goes on to the caller. */
        void upstreamReset(long errorCode) {
            log.debug("event=h2_upstream_reset cluster={} endpoint={} error_code={}", cluster.name(), endpoint, errorCode);
            if (status.equals("0") && sent != null) {
                boolean refused = errorCode == Http2Error.REFUSED_STREAM.code();
                if (retryStream(refused ? "refused-stream" : "reset", 0) || refused && resendRefused()) {
                    return;
                }
                dropSent();
            }
            resetDownstream(errorCode);
        }

        /** The retry_on name of a trailers-only answer's gRPC status, or null when it has none or another. */
        private static String grpcCondition(Http2Headers headers) {
            CharSequence code = headers.get("grpc-status");
            if (code == null) {
                return null;
            }
            for (var e : ProxyConfig.RetrySpec.GRPC_CONDITIONS.entrySet()) {
                if (e.getValue().toString().contentEquals(code)) {
                    return e.getKey();
                }
            }
            return null;
        }

        /**
         * Sends the request again on another endpoint after its stream failed there before an answer
         * reached the caller: {@code condition} is {@code reset} (the stream or its connection lost),
         * {@code refused-stream}, {@code 5xx} (with the status {@code code}) or a gRPC status name. As in
         * Envoy, {@code 5xx} and {@code gateway-error} also cover resets, and {@code reset} covers
         * refused streams. Resets and 5xx answers are retried for idempotent methods only; a refused
         * stream (RFC 9113: not processed) and a gRPC status the route names, for any method. True
         * when the request is on its way elsewhere; the failed stream is then cancelled and forgotten.
         */
        private boolean retryStream(String condition, int code) {
            if (sent == null || downDone || counted || !front.channel.isActive()) {
                return false;
            }
            InetSocketAddress failedAt = endpoint;
            if (!retriedElsewhere(condition, code)) {
                return false;
            }
            log.debug("event=h2_stream_retried cluster={} endpoint={} condition={} next={}", cluster.name(), failedAt, condition, endpoint);
            resend(failedAt);
            return true;
        }

        /**
         * A stream the upstream refused, which the route's policy does not retry, sent again (at most
         * {@link #MAX_REFUSED_RESENDS} times) on an endpoint the load balancer picks afresh: the same
         * one may come back, since a refusal is a server at its limit of streams (or going away), not
         * a failure. Nothing of the stream was processed, so any method is sent again, as gRPC's
         * transparent retry does.
         */
        private boolean resendRefused() {
            if (sent == null || downDone || counted || !front.channel.isActive() || refusedResends >= MAX_REFUSED_RESENDS) {
                return false;
            }
            var next = cluster.endpoints().pick(Set.of());
            if (next.isEmpty()) {
                return false;
            }
            refusedResends++;
            InetSocketAddress failedAt = endpoint;
            endpoint = next.get();
            log.debug("event=h2_refused_stream_resent cluster={} endpoint={} next={}", cluster.name(), failedAt, endpoint);
            io.micrometer.core.instrument.Counter.builder(dev.isthmus.proxy.ProxyMetrics.REFUSED_STREAMS_RESENT)
                    .tag(dev.isthmus.proxy.ProxyMetrics.LABEL_LISTENER, front.shared.listener()).register(front.shared.meters()).increment();
            resend(failedAt);
            return true;
        }

        /** Its upstream stream was given to the codec but waits there (not sent: the server's limit of streams), and can be sent again. */
        boolean waitsInCodec() {
            return up != null && up.waiting() && sent != null && status.equals("0") && !downDone && !counted;
        }

        /** Off a stalled connection ({@link Back#checkStall}): out of its codec, and on to the same endpoint over another connection. */
        void moveOff() {
            var stream = up;
            back.calls.remove(stream);
            up = null; // nothing to cancel: it never left; the promises of its frames complete now, for a stream no longer the call's
            back.dropWaiting(stream);
            resend(endpoint);
        }

        /** The kept frames on their way again, to {@link #endpoint}; the stream at {@code failedAt} is cancelled and forgotten. */
        private void resend(InetSocketAddress failedAt) {
            if (!released) {
                released = true;
                cluster.endpoints().released(failedAt);
            }
            if (back != null && up != null) {
                back.calls.remove(up);
                if (up.state() != Http2Stream.State.CLOSED && backChannel.isActive()) {
                    backChannel.writeAndFlush(new DefaultHttp2ResetFrame(Http2Error.CANCEL).stream(up));
                }
            }
            up = null;
            back = null;
            backChannel = null;
            upDone = false;
            status = "0";
            waiting.addAll(sent); // copies: their bytes went back to the caller's window the first time
            sent.clear();
            sentBytes = 0;
            connectUpstream();
        }

        /**
         * Whether the route retries {@code condition} for this request, and then, with the failed
         * endpoint counted as tried, whether another endpoint is left within {@code num_retries} and the
         * retry budget ({@link #endpoint} is then that one).
         */
        private boolean retriedElsewhere(String condition, int code) {
            if (!retry.retries(condition, code) || !(idempotent || ProxyConfig.RetrySpec.anyMethod(condition))) {
                return false;
            }
            if (tried == null) {
                tried = new java.util.HashSet<>(4);
            }
            tried.add(endpoint);
            return nextEndpoint(true);
        }

        /** The translated HTTP/1.1 request again on another endpoint after a reset or a 5xx answer, as streams are ({@link #retryStream}). */
        private boolean h1RetriedElsewhere(String condition, int code) {
            if (h1Request == null || downDone || counted || !retriedElsewhere(condition, code)) {
                return false;
            }
            status = "0";
            sendH1ToEndpoint();
            return true;
        }

        private void dropSent() {
            if (sent != null) {
                sent.forEach(ReferenceCountUtil::release);
                sent = null;
            }
        }

        void resetDownstream(long errorCode) {
            if (!downDone && front.channel.isActive()) {
                front.channel.write(new DefaultHttp2ResetFrame(errorCode).stream(down));
                front.flusher.mark(front.channel);
                if (back != null) {
                    back.flusher.mark(front.channel);
                }
            }
        }

        /** The caller's stream is closed: a still open upstream stream is cancelled; the call is counted. */
        void downstreamClosed() {
            downDone = true;
            if (up != null && !upDone && up.state() != Http2Stream.State.CLOSED && backChannel.isActive()) {
                backChannel.writeAndFlush(new DefaultHttp2ResetFrame(Http2Error.CANCEL).stream(up));
            }
            drop();
            count();
        }

        /** The upstream stream is closed (done, reset, or its connection lost). */
        void upstreamClosed() {
            if (status.equals("0") && !responseEnded && sent != null) {
                boolean refused = back != null && back.goingAway() && up.id() > back.codec.goAwayLastStreamId(); // past the GOAWAY: not processed
                if (retryStream(refused ? "refused-stream" : "reset", 0) || refused && resendRefused()) {
                    return;
                }
            }
            upDone = true;
            if (!released && endpoint != null) {
                released = true;
                cluster.endpoints().released(endpoint);
            }
            if (!downDone && !responseEnded) {
                // the upstream went away before answering in full
                if (status.equals("0")) {
                    answer("503", "upstream_reset");
                } else {
                    resetDownstream(Http2Error.CANCEL.code());
                }
                front.flusher.mark(front.channel);
                if (back != null) {
                    back.flusher.mark(front.channel);
                }
            }
        }

        private void drop() {
            dropSent();
            Object m;
            while ((m = waiting.poll()) != null) {
                ReferenceCountUtil.release(m);
            }
            if (h1Body != null) {
                h1Body.release();
                h1Body = null;
            }
            if (h1Request != null) {
                h1Request.release();
                h1Request = null;
            }
            h1Headers = null;
        }

        /** A refused HTTP/1.1-bound stream: nothing more is read of it. */
        private void resetUpstreamless() {
            if (!downDone && front.channel.isActive()) {
                front.channel.write(new DefaultHttp2ResetFrame(Http2Error.CANCEL).stream(down));
            }
        }

        /** The whole stream as one HTTP/1.1 request to the cluster's endpoint; the answer comes back as the stream's frames. */
        private void sendH1() {
            Http2Headers headers = h1Headers;
            ByteBuf body = h1Body != null ? h1Body : io.netty.buffer.Unpooled.EMPTY_BUFFER;
            h1Headers = null;
            h1Body = null;
            io.netty.handler.codec.http.FullHttpRequest request;
            try {
                request = io.netty.handler.codec.http2.HttpConversionUtil.toFullHttpRequest(down.id(), headers, body, false);
            } catch (io.netty.handler.codec.http2.Http2Exception e) {
                body.release();
                answer("400", "bad_request");
                return;
            }
            for (var ext : io.netty.handler.codec.http2.HttpConversionUtil.ExtensionHeaderNames.values()) {
                request.headers().remove(ext.text());
            }
            io.netty.handler.codec.http.HttpUtil.setContentLength(request, request.content().readableBytes());
            h1Request = request;
            sendH1ToEndpoint();
        }

        /** Sends {@link #h1Request} (a reference of its own: ours stays, to send it elsewhere after a connect failure). */
        private void sendH1ToEndpoint() {
            cluster.endpoints().connected(endpoint);
            released = false;
            upDone = false;
            Http1Bridge.send(front.channel.eventLoop(), front.shared.loops().channelType(), cluster, endpoint, h1Request.retain(), h1Timeout,
                    this::h1Outcome, () -> io.micrometer.core.instrument.Counter.builder(dev.isthmus.proxy.ProxyMetrics.STALE_CONNECTION_RESENDS)
                            .tag(dev.isthmus.proxy.ProxyMetrics.LABEL_LISTENER, front.shared.listener()).register(front.shared.meters()).increment());
        }

        private void h1Outcome(Http1Bridge.Outcome outcome) {
            upDone = true;
            if (!released) {
                released = true;
                cluster.endpoints().released(endpoint);
            }
            if (outcome instanceof Http1Bridge.Failed failed) {
                if (failed.connect()) {
                    ejectAfterConnectFailure(endpoint, failed.cause());
                    if (!downDone && nextEndpoint(retry.retries("connect-failure", 0))) {
                        sendH1ToEndpoint();
                        return;
                    }
                } else {
                    cluster.endpoints().failed(endpoint);
                    if (!failed.timedOut() && h1RetriedElsewhere("reset", 0)) {
                        return;
                    }
                }
                log.debug("event=h1_upstream_failed cluster={} endpoint={} cause={}", cluster.name(), endpoint, failed.reason());
                answer(failed.timedOut() ? "504" : "503",
                        failed.timedOut() ? "upstream_timeout" : failed.connect() ? "upstream_connect_failure" : "upstream_reset");
                front.channel.flush();
                return;
            }
            var answered = (Http1Bridge.Answered) outcome;
            String answeredStatus = answered.headers().status() == null ? "502" : answered.headers().status().toString();
            if (answeredStatus.startsWith("5")) {
                cluster.endpoints().failed(endpoint);
                if (h1RetriedElsewhere("5xx", Integer.parseInt(answeredStatus))) {
                    answered.body().release();
                    return;
                }
            } else {
                cluster.endpoints().succeeded(endpoint);
            }
            if (h1Request != null) {
                h1Request.release();
                h1Request = null;
            }
            if (downDone || !front.channel.isActive()) {
                answered.body().release();
                return;
            }
            status = answeredStatus;
            boolean hasBody = answered.body().isReadable();
            boolean hasTrailers = answered.trailers() != null;
            responseEnded = true;
            front.channel.write(new DefaultHttp2HeadersFrame(answered.headers(), !hasBody && !hasTrailers).stream(down));
            if (hasBody) {
                front.channel.write(new DefaultHttp2DataFrame(answered.body(), !hasTrailers).stream(down));
            } else {
                answered.body().release();
            }
            if (hasTrailers) {
                front.channel.write(new DefaultHttp2HeadersFrame(answered.trailers(), true).stream(down));
            }
            count();
            front.channel.flush();
        }

        private void answer(String code, String reason) {
            status = code;
            responseEnded = true;
            drop();
            if (!downDone && front.channel.isActive()) {
                var headers = new DefaultHttp2Headers().status(code).set(HttpProxy.REASON_HEADER, reason);
                stopRequest(front.channel.write(new DefaultHttp2HeadersFrame(headers, true).stream(down)));
                front.flusher.mark(front.channel);
            }
            count();
        }

        /**
         * The whole answer is on its way to the caller ({@code written}) while the caller's request is
         * still open (the server answered before reading all of it: an early 401 or 413, a gRPC status
         * before the client's stream ended, or a local answer): once it is written the caller's stream
         * is reset with NO_ERROR, as RFC 9113 section 8.1 says a server may, so the caller stops
         * sending; the upstream stream is then cancelled ({@link #downstreamClosed}). Without it, curl
         * waited to finish its upload until the upstream connection idled out (60 s). After the write,
         * not before: a reset would drop the answer's frames still waiting for the flow-control window.
         */
        private void stopRequest(io.netty.channel.ChannelFuture written) {
            var state = down.state();
            if (state == Http2Stream.State.HALF_CLOSED_REMOTE || state == Http2Stream.State.CLOSED) {
                return; // the caller's end of stream has come
            }
            written.addListener((ChannelFutureListener) f -> {
                // the answer's end is written and the caller's has not come
                if (f.isSuccess() && down.state() == Http2Stream.State.HALF_CLOSED_LOCAL && front.channel.isActive()) {
                    front.channel.writeAndFlush(new DefaultHttp2ResetFrame(Http2Error.NO_ERROR).stream(down));
                }
            });
        }

        /**
         * The caller's stream has ended: the route's timeout starts, as Envoy's does, so a
         * streaming call that is still sending is not cut (a server-streaming answer is, like Envoy's,
         * unless its route's timeout is 0).
         */
        private void requestEnded() {
            if (!timeout.isZero() && timer == null && !counted) {
                timer = Deadlines.schedule(front.channel.eventLoop(), timeout.toMillis(), this::timedOut);
            }
        }

        /** No complete answer within the route's timeout: 504 if nothing was answered yet, else the stream is reset. */
        private void timedOut() {
            timer = null;
            if (counted || downDone) {
                return;
            }
            if (status.equals("0")) {
                answer("504", "upstream_timeout");
            } else {
                responseEnded = true;
                resetDownstream(Http2Error.CANCEL.code());
                count();
            }
            // after the caller's answer: the upstream stream's close must not answer it again
            if (up != null && !upDone && backChannel.isActive()) {
                backChannel.writeAndFlush(new DefaultHttp2ResetFrame(Http2Error.CANCEL).stream(up));
            }
            front.channel.flush();
        }

        /** A circuit breaker of the cluster is open: 503, the breaker named in a header, as for HTTP/1.1. */
        private void overloaded(String breaker) {
            status = "503";
            responseEnded = true;
            drop();
            if (!downDone && front.channel.isActive()) {
                var headers = new DefaultHttp2Headers().status(status).set(HttpProxy.REASON_HEADER, "overloaded").set(HttpProxy.OVERLOADED_HEADER, breaker);
                front.channel.write(new DefaultHttp2HeadersFrame(headers, true).stream(down));
                front.flusher.mark(front.channel);
            }
            count();
        }

        /** Counted once, when the call has its answer or ends; its timer and its request slot end with it. */
        void count() {
            if (timer != null) {
                timer.cancel();
                timer = null;
            }
            if (holdsRequest) {
                holdsRequest = false;
                cluster.breakers().endRequest();
            }
            for (; heldRetries > 0; heldRetries--) {
                cluster.breakers().endRetry();
            }
            if (!counted) {
                counted = true;
                front.shared.count(cluster == null ? "none" : cluster.name(), Integer.parseInt(status), start, front.caller,
                        cluster != null && endpoint != null ? cluster.endpoints().region(endpoint) : "");
            }
        }
    }

    /**
     * The multiplexed HTTP/2 connection of {@code cluster} to an endpoint on this event loop (one
     * still connecting too: a burst of streams before it connects shares it), made when there is
     * none. Streams over its server's SETTINGS_MAX_CONCURRENT_STREAMS wait in the codec for a free
     * one: measured against opening more connections as Envoy does (one per 100 streams), one
     * connection relayed 100k req/s where four relayed 65k (h2load, 320 streams; fewer, fuller
     * writes). A connection at the limit where no stream has ended for {@link #stallNanos} is
     * passed over (its streams are long-lived: watches), and the calls waiting in its codec are moved
     * to the new one ({@link Back#checkStall}); when {@code max_connections} allows no new connection,
     * streams wait on the stalled one. Per cluster, not per address: clusters that share an address
     * (the subsets of a service behind one east-west gateway) differ in their TLS SNI, so in where
     * the gateway sends them. Null when the cluster's {@code max_connections} breaker is open and a
     * new connection is needed. The caller's listener on the returned future takes the reservation
     * back ({@link Back#pending}).
     */
    private static io.netty.channel.ChannelFuture connection(EventLoop loop, Class<? extends io.netty.channel.socket.SocketChannel> type,
            InetSocketAddress endpoint, HttpProxy.Upstream cluster) {
        Map<HttpProxy.PoolKey, List<Channel>> byEndpoint = HttpProxy.loopPools(CONNECTIONS, loop, idleNanos / 2, Http2Relay::closeIdle);
        var key = new HttpProxy.PoolKey(cluster.name(), endpoint);
        List<Channel> open = byEndpoint.computeIfAbsent(key, k -> new ArrayList<>(2));
        long now = System.nanoTime();
        Channel stalled = null;
        for (Channel ch : open) {
            Back b = ch.pipeline().get(Back.class);
            if (b != null && !b.goingAway() && (ch.isActive() || !b.connecting.isDone())) {
                if (b.stalled(now)) {
                    stalled = ch;
                    continue;
                }
                return take(ch, b);
            }
        }
        if (cluster.breakers().tryConnection() != null) {
            if (stalled != null) { // no new connection allowed: wait on the stalled one rather than fail
                return take(stalled, stalled.pipeline().get(Back.class));
            }
            return null;
        }
        var breakers = cluster.breakers();
        // streams beyond the server's SETTINGS_MAX_CONCURRENT_STREAMS wait in the codec
        var connect = cluster.connect(loop, type, endpoint,
                p -> p.addLast(new Http2Upstream()).addLast(new Back()));
        Channel ch = connect.channel();
        Back b = ch.pipeline().get(Back.class);
        if (b != null) { // registered on this loop already, so initialised
            b.connecting = connect;
            b.pending++;
            open.add(ch);
            if (b.overLimit()) {
                b.watchStall();
            }
        }
        ch.closeFuture().addListener(f -> {
            open.remove(ch);
            if (open.isEmpty()) {
                byEndpoint.remove(key, open);
            }
            breakers.endConnection();
        });
        return connect;
    }

    /** Whether {@code loop} has an entry of upstream connections (for tests: it goes when the loop terminates). */
    static boolean hasConnectionsOf(EventLoop loop) {
        return CONNECTIONS.containsKey(loop);
    }

    /** A stream for connection {@code ch}: its reservation ({@link Back#pending}), and a stall check when calls will wait in its codec. */
    private static io.netty.channel.ChannelFuture take(Channel ch, Back b) {
        b.pending++;
        if (b.overLimit()) {
            b.watchStall();
        }
        return ch.isActive() ? ch.newSucceededFuture() : b.connecting;
    }

    /** Closes the loop's upstream connections that have carried no stream for {@link #idleNanos} (on the loop). */
    private static void closeIdle(Map<HttpProxy.PoolKey, List<Channel>> pool) {
        long idle = idleNanos;
        long now = System.nanoTime();
        for (var open : List.copyOf(pool.values())) {
            for (Channel ch : List.copyOf(open)) {
                Back b = ch.pipeline().get(Back.class);
                if (b != null && b.calls.isEmpty() && b.pending == 0 && (now - b.lastUsed > idle || b.goingAway())) {
                    log.debug("event=h2_upstream_idle_closed remote={}", ch.remoteAddress());
                    ch.close();
                }
            }
        }
    }
}
