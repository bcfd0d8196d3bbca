package dev.isthmus.proxy.grpc;

import com.google.protobuf.MessageLite;
import com.google.protobuf.Parser;
import io.netty.bootstrap.Bootstrap;
import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInboundHandlerAdapter;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.ChannelOption;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.epoll.Epoll;
import io.netty.channel.epoll.EpollChannelOption;
import io.netty.channel.epoll.EpollEventLoopGroup;
import io.netty.channel.epoll.EpollSocketChannel;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.nio.NioSocketChannel;
import io.netty.handler.codec.http2.DefaultHttp2DataFrame;
import io.netty.handler.codec.http2.DefaultHttp2Headers;
import io.netty.handler.codec.http2.DefaultHttp2HeadersFrame;
import io.netty.handler.codec.http2.Http2DataFrame;
import io.netty.handler.codec.http2.Http2FrameCodecBuilder;
import io.netty.handler.codec.http2.Http2GoAwayFrame;
import io.netty.handler.codec.http2.Http2Headers;
import io.netty.handler.codec.http2.Http2HeadersFrame;
import io.netty.handler.codec.http2.Http2MultiplexHandler;
import io.netty.handler.codec.http2.Http2ResetFrame;
import io.netty.handler.codec.http2.Http2Settings;
import io.netty.handler.codec.http2.Http2StreamChannel;
import io.netty.handler.codec.http2.Http2StreamChannelBootstrap;
import io.netty.util.ReferenceCountUtil;
import io.netty.util.concurrent.DefaultThreadFactory;
import io.netty.util.concurrent.ScheduledFuture;
import java.net.URLDecoder;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * The proxies' gRPC client: calls on one plaintext HTTP/2 connection (h2c with prior knowledge), on
 * Netty's HTTP/2 codec, which the proxies load anyway. The proxies make two kinds of call, the ADS
 * stream (bidirectional) and the trust bridge's {@code Issue} (unary) and {@code WatchBundle}
 * (server streaming); grpc-java for them loaded about 530 classes of {@code io.grpc} and 120 of
 * Guava into every deployed sidecar and gateway (docs/benchmarks.md).
 *
 * <p>What it does of the gRPC protocol over HTTP/2 (grpc/grpc PROTOCOL-HTTP2.md): requests with
 * {@code :method POST}, {@code content-type application/grpc}, {@code te: trailers} and
 * {@code grpc-timeout} when the call has a deadline; length-prefixed messages, uncompressed both
 * ways (it offers no {@code grpc-accept-encoding}; a compressed message is an error); the status
 * from the trailers, or from the headers of a trailers-only answer, or from the HTTP status when an
 * intermediary answered, or from a {@code RST_STREAM}. A connection that is closed or has received a
 * GOAWAY takes no new call; the next call opens a new one. It does not retry: the callers do, with
 * their own backoff.
 *
 * <p>Every call's events run on one event-loop thread shared by the process's gRPC clients: a
 * listener must not block.
 */
public final class GrpcClient implements AutoCloseable {

    /** The largest message taken (grpc-java's default is 4 MiB; an xDS snapshot of a large mesh is more). */
    public static final int MAX_MESSAGE_BYTES = 64 << 20;

    private static final class Loop {
        static final boolean EPOLL = Epoll.isAvailable();
        static final EventLoopGroup GROUP = EPOLL ? new EpollEventLoopGroup(1, new DefaultThreadFactory("grpc-client", true))
                : new NioEventLoopGroup(1, new DefaultThreadFactory("grpc-client", true));
    }

    /** What a call tells its caller. Both run on the client's event loop. */
    public interface Listener<T> {
        void onMessage(T message);

        /** Called once, last: {@link GrpcStatus#OK} when the server ended the call so. */
        void onClose(GrpcStatus status);
    }

    private final String host;
    private final int port;
    private final String authority;
    private final Bootstrap bootstrap;
    /** The connection that takes new calls, or the one being opened; touched on the loop only. */
    private ChannelFuture connection;
    private boolean closed;

    /** @param target host:port */
    public GrpcClient(String target) {
        int colon = target.lastIndexOf(':');
        if (colon <= 0) {
            throw new IllegalArgumentException("not host:port: " + target);
        }
        this.host = target.substring(0, colon);
        this.port = Integer.parseInt(target.substring(colon + 1));
        this.authority = target;
        // A server that vanished without closing (its host gone, a partition) is noticed by TCP keepalive.
        // HTTP/2 PINGs would notice it sooner, but grpc-java's servers take a client's PING only every
        // 5 minutes (more often, and they answer GOAWAY too_many_pings).
        Bootstrap b = new Bootstrap().group(Loop.GROUP).channel(Loop.EPOLL ? EpollSocketChannel.class : NioSocketChannel.class)
                .option(ChannelOption.CONNECT_TIMEOUT_MILLIS, 10_000).option(ChannelOption.TCP_NODELAY, true).option(ChannelOption.SO_KEEPALIVE, true);
        if (Loop.EPOLL) { // probes after 30 s of silence, every 10 s; closed after 3 unanswered: about 60 s
            b.option(EpollChannelOption.TCP_KEEPIDLE, 30).option(EpollChannelOption.TCP_KEEPINTVL, 10).option(EpollChannelOption.TCP_KEEPCNT, 3);
        }
        this.bootstrap = b.handler(new ChannelInitializer<Channel>() {
                    @Override
                    protected void initChannel(Channel ch) {
                        ch.pipeline().addLast(Http2FrameCodecBuilder.forClient()
                                .initialSettings(Http2Settings.defaultSettings().initialWindowSize(1 << 20).pushEnabled(false)).build());
                        ch.pipeline().addLast(new Http2MultiplexHandler(new ChannelInboundHandlerAdapter()));
                        ch.pipeline().addLast(new ChannelInboundHandlerAdapter() {
                            @Override
                            public void channelRead(ChannelHandlerContext ctx, Object msg) {
                                if (msg instanceof Http2GoAwayFrame) {
                                    // the streams it has started finish; new calls go to a new connection
                                    retire(ctx.channel());
                                }
                                ReferenceCountUtil.release(msg);
                            }

                            @Override
                            public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
                                ctx.close();
                            }
                        });
                    }
                });
    }

    private void retire(Channel channel) {
        if (connection != null && connection.channel() == channel) {
            connection = null;
        }
    }

    /**
     * Starts a call of {@code method} ("package.Service/Method"); its messages may be sent at once,
     * they wait for the stream.
     *
     * @param deadline null: none
     */
    public <Req extends MessageLite, Resp> Call<Req> call(String method, Parser<Resp> parser, Duration deadline, Listener<Resp> listener) {
        var call = new Call<Req>(method, deadline, new Reader<>(parser, listener));
        Loop.GROUP.execute(call::open);
        return call;
    }

    /**
     * A unary call, waiting for its answer.
     *
     * @throws GrpcException with the call's status when it did not end OK with one message
     */
    public <Req extends MessageLite, Resp> Resp unary(String method, Req request, Parser<Resp> parser, Duration deadline) {
        java.util.Objects.requireNonNull(deadline, "a unary call needs a deadline");
        var answer = new CompletableFuture<Resp>();
        var received = new Object() {
            Resp message;
        };
        Call<Req> call = call(method, parser, deadline, new Listener<Resp>() {
            @Override
            public void onMessage(Resp message) {
                received.message = message;
            }

            @Override
            public void onClose(GrpcStatus status) {
                if (!status.isOk()) {
                    answer.completeExceptionally(new GrpcException(status));
                } else if (received.message == null) {
                    answer.completeExceptionally(new GrpcException(new GrpcStatus(GrpcStatus.INTERNAL, "the server sent no answer to a unary call")));
                } else {
                    answer.complete(received.message);
                }
            }
        });
        call.send(request);
        call.halfClose();
        try {
            // the deadline closes the call; the margin only guards against a loop that does not run
            return answer.get(deadline.toMillis() + 5_000, TimeUnit.MILLISECONDS);
        } catch (ExecutionException e) {
            throw (GrpcException) e.getCause();
        } catch (TimeoutException e) {
            call.cancel("no answer");
            throw new GrpcException(new GrpcStatus(GrpcStatus.DEADLINE_EXCEEDED, "no answer from " + authority));
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            call.cancel("interrupted");
            throw new GrpcException(new GrpcStatus(GrpcStatus.CANCELLED, "interrupted"));
        }
    }

    /** Closes the connection; calls on it end {@code UNAVAILABLE}, and new ones at once. */
    @Override
    public void close() {
        Loop.GROUP.execute(() -> {
            closed = true;
            if (connection != null) {
                connection.channel().close();
                connection = null;
            }
        });
    }

    private ChannelFuture connection() {
        if (connection == null || (connection.isDone() && !connection.channel().isActive())) {
            connection = bootstrap.connect(host, port);
            ChannelFuture opened = connection;
            opened.channel().closeFuture().addListener(f -> retire(opened.channel()));
        }
        return connection;
    }

    /** One call: its stream, and what waits for the stream to open. All on the loop. */
    public final class Call<Req extends MessageLite> {

        private static final Object HALF_CLOSE = new Object();

        private final String method;
        private final Duration deadline;
        private final Reader<?> reader;
        private final ArrayDeque<Object> waiting = new ArrayDeque<>();
        private Http2StreamChannel stream;
        private ScheduledFuture<?> timer;
        private boolean done;

        private Call(String method, Duration deadline, Reader<?> reader) {
            this.method = method;
            this.deadline = deadline;
            this.reader = reader;
        }

        /** Sends a message (from any thread). */
        public void send(Req message) {
            enqueue(message.toByteArray());
        }

        /** Ends the caller's side of the stream (from any thread). */
        public void halfClose() {
            enqueue(HALF_CLOSE);
        }

        /** A message's bytes or {@link #HALF_CLOSE}: written now if the stream is open, else when it opens. */
        private void enqueue(Object item) {
            Loop.GROUP.execute(() -> {
                if (done) {
                    return;
                }
                if (stream == null) {
                    waiting.add(item);
                } else {
                    stream.writeAndFlush(frame(item));
                }
            });
        }

        /** Ends the call ({@code CANCELLED}), resetting its stream (from any thread). */
        public void cancel(String why) {
            Loop.GROUP.execute(() -> finish(new GrpcStatus(GrpcStatus.CANCELLED, why)));
        }

        private void open() {
            if (closed) {
                finish(new GrpcStatus(GrpcStatus.UNAVAILABLE, "the client is closed"));
                return;
            }
            if (deadline != null) {
                timer = Loop.GROUP.next().schedule(() -> finish(new GrpcStatus(GrpcStatus.DEADLINE_EXCEEDED,
                        "deadline of " + deadline.toMillis() + " ms exceeded")), deadline.toMillis(), TimeUnit.MILLISECONDS);
            }
            ChannelFuture connecting = connection();
            connecting.addListener(c -> {
                if (done) {
                    return;
                }
                if (!c.isSuccess()) {
                    finish(new GrpcStatus(GrpcStatus.UNAVAILABLE, "cannot connect to " + authority + ": " + c.cause()));
                    return;
                }
                new Http2StreamChannelBootstrap(connecting.channel()).handler(new StreamHandler(this)).open().addListener(s -> {
                    if (!s.isSuccess()) {
                        finish(new GrpcStatus(GrpcStatus.UNAVAILABLE, "cannot open a stream to " + authority + ": " + s.cause()));
                        return;
                    }
                    Http2StreamChannel opened = (Http2StreamChannel) s.getNow();
                    if (done) {
                        opened.close();
                        return;
                    }
                    stream = opened;
                    Http2Headers headers = new DefaultHttp2Headers().method("POST").scheme("http").path("/" + method).authority(authority);
                    headers.add("content-type", "application/grpc").add("te", "trailers").add("user-agent", "isthmus-proxy-grpc");
                    if (deadline != null) {
                        headers.add("grpc-timeout", Math.max(1, deadline.toMillis()) + "m");
                    }
                    stream.write(new DefaultHttp2HeadersFrame(headers, false));
                    while (!waiting.isEmpty()) {
                        stream.write(frame(waiting.poll()));
                    }
                    stream.flush();
                });
            });
        }

        /** The DATA frame of a queued item: a length-prefixed message, or the empty one that ends the caller's side. */
        private DefaultHttp2DataFrame frame(Object item) {
            if (item == HALF_CLOSE) {
                return new DefaultHttp2DataFrame(true);
            }
            byte[] message = (byte[]) item;
            ByteBuf buf = stream.alloc().buffer(5 + message.length);
            buf.writeByte(0).writeInt(message.length).writeBytes(message);
            return new DefaultHttp2DataFrame(buf, false);
        }

        /** Ends the call once: the listener hears {@code status}; a stream still open is reset. */
        void finish(GrpcStatus status) {
            if (done) {
                return;
            }
            done = true;
            waiting.clear();
            if (timer != null) {
                timer.cancel(false);
            }
            if (stream != null && stream.isActive()) {
                stream.close(); // RST_STREAM(CANCEL) when the stream is still open
            }
            reader.release();
            reader.listener.onClose(status);
        }
    }

    /** The answer's messages, cut from the DATA frames. */
    private static final class Reader<T> {
        final Parser<T> parser;
        final Listener<T> listener;
        private ByteBuf pending;

        Reader(Parser<T> parser, Listener<T> listener) {
            this.parser = parser;
            this.listener = listener;
        }

        /** Takes {@code data}; returns a status when the data is not a valid stream of messages. */
        GrpcStatus read(ByteBuf data) {
            if (pending == null) {
                pending = data.alloc().buffer(data.readableBytes());
            }
            pending.writeBytes(data);
            while (pending.readableBytes() >= 5) {
                int start = pending.readerIndex();
                byte flags = pending.getByte(start);
                long length = pending.getUnsignedInt(start + 1);
                if (flags != 0) {
                    return new GrpcStatus(GrpcStatus.INTERNAL, flags == 1 ? "a compressed message, though no compression was offered"
                            : "a message with flags " + flags);
                }
                if (length > MAX_MESSAGE_BYTES) {
                    return new GrpcStatus(GrpcStatus.RESOURCE_EXHAUSTED, "a message of " + length + " bytes, over the limit of " + MAX_MESSAGE_BYTES);
                }
                if (pending.readableBytes() < 5 + length) {
                    break;
                }
                T message;
                try {
                    message = parser.parseFrom(pending.nioBuffer(start + 5, (int) length));
                } catch (com.google.protobuf.InvalidProtocolBufferException e) {
                    return new GrpcStatus(GrpcStatus.INTERNAL, "a message cannot be read: " + e.getMessage());
                }
                pending.skipBytes(5 + (int) length);
                listener.onMessage(message);
            }
            pending.discardSomeReadBytes();
            return null;
        }

        boolean partial() {
            return pending != null && pending.isReadable();
        }

        void release() {
            if (pending != null) {
                pending.release();
                pending = null;
            }
        }
    }

    /** The stream's frames, on its child channel. */
    private static final class StreamHandler extends ChannelInboundHandlerAdapter {
        private final Call<?> call;
        private boolean headersSeen;

        StreamHandler(Call<?> call) {
            this.call = call;
        }

        @Override
        public void channelRead(ChannelHandlerContext ctx, Object msg) {
            try {
                if (call.done) {
                    return;
                }
                if (msg instanceof Http2HeadersFrame h) {
                    if (!headersSeen) {
                        headersSeen = true;
                        if (h.isEndStream() && h.headers().contains("grpc-status")) { // trailers only
                            call.finish(statusOf(h.headers()));
                            return;
                        }
                        GrpcStatus refused = checkResponseHeaders(h.headers());
                        if (refused != null) {
                            call.finish(refused);
                            return;
                        }
                        if (!h.isEndStream()) {
                            return;
                        }
                    }
                    if (h.isEndStream()) { // the trailers (or a trailers-only answer)
                        call.finish(call.reader.partial() ? new GrpcStatus(GrpcStatus.INTERNAL, "the stream ended inside a message")
                                : statusOf(h.headers()));
                    }
                } else if (msg instanceof Http2DataFrame d) {
                    GrpcStatus bad = call.reader.read(d.content());
                    if (bad != null) {
                        call.finish(bad);
                    } else if (d.isEndStream()) {
                        call.finish(new GrpcStatus(GrpcStatus.INTERNAL, "the stream ended without trailers"));
                    }
                } else if (msg instanceof Http2ResetFrame r) {
                    long code = r.errorCode();
                    call.finish(new GrpcStatus(code == 7 /* REFUSED_STREAM */ ? GrpcStatus.UNAVAILABLE : code == 8 /* CANCEL */ ? GrpcStatus.CANCELLED
                            : GrpcStatus.INTERNAL, "the server reset the stream (HTTP/2 error " + code + ")"));
                }
            } finally {
                ReferenceCountUtil.release(msg);
            }
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            call.finish(new GrpcStatus(GrpcStatus.UNAVAILABLE, "the connection to the server closed"));
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            call.finish(new GrpcStatus(GrpcStatus.UNAVAILABLE, cause.toString()));
        }

        /** Null when the headers open a gRPC answer; otherwise why not. */
        private static GrpcStatus checkResponseHeaders(Http2Headers headers) {
            CharSequence status = headers.status();
            int http = status == null ? 0 : Integer.parseInt(status.toString());
            if (http != 200) {
                CharSequence grpc = headers.get("grpc-status");
                return grpc != null ? statusOf(headers) : new GrpcStatus(fromHttp(http), "HTTP status " + http + " from the server");
            }
            CharSequence type = headers.get("content-type");
            if (type == null || !type.toString().startsWith("application/grpc")) {
                return new GrpcStatus(GrpcStatus.UNKNOWN, "the answer's content-type is " + type + ", not application/grpc");
            }
            return null;
        }

        private static GrpcStatus statusOf(Http2Headers trailers) {
            CharSequence code = trailers.get("grpc-status");
            if (code == null) {
                return new GrpcStatus(GrpcStatus.INTERNAL, "the trailers have no grpc-status");
            }
            int value;
            try {
                value = Integer.parseInt(code.toString());
            } catch (NumberFormatException e) {
                return new GrpcStatus(GrpcStatus.INTERNAL, "grpc-status is not a number: " + code);
            }
            CharSequence message = trailers.get("grpc-message");
            return new GrpcStatus(value, message == null ? "" : percentDecoded(message.toString()));
        }

        /** grpc-message is percent-encoded UTF-8 (and never uses '+' for a space). */
        private static String percentDecoded(String s) {
            try {
                return URLDecoder.decode(s.replace("+", "%2B"), StandardCharsets.UTF_8);
            } catch (IllegalArgumentException e) {
                return s;
            }
        }

        /** gRPC's mapping of an HTTP status that came without a gRPC status (grpc/grpc doc/http-grpc-status-mapping.md). */
        private static int fromHttp(int http) {
            return switch (http) {
                case 400 -> GrpcStatus.INTERNAL;
                case 401 -> GrpcStatus.UNAUTHENTICATED;
                case 403 -> GrpcStatus.PERMISSION_DENIED;
                case 404 -> GrpcStatus.UNIMPLEMENTED;
                case 429, 502, 503, 504 -> GrpcStatus.UNAVAILABLE;
                default -> GrpcStatus.UNKNOWN;
            };
        }
    }
}
