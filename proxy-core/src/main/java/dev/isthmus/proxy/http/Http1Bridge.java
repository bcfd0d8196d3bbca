package dev.isthmus.proxy.http;

import io.netty.buffer.ByteBuf;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFutureListener;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.EventLoop;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.handler.codec.http.FullHttpRequest;
import io.netty.handler.codec.http.FullHttpResponse;
import io.netty.handler.codec.http.HttpClientCodec;
import io.netty.handler.codec.http.HttpHeaderNames;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpUtil;
import io.netty.handler.codec.http2.Http2Headers;
import io.netty.handler.codec.http2.HttpConversionUtil;
import io.netty.util.concurrent.ScheduledFuture;
import java.net.InetSocketAddress;
import java.time.Duration;
import java.util.ArrayDeque;
import java.util.Map;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.TimeUnit;
import java.util.function.Consumer;

/**
 * HTTP/2 callers to HTTP/1.1 upstreams (Envoy's codec translation): a caller's stream, once whole
 * (at most {@link HttpProxy#MAX_BODY} of body), becomes one HTTP/1.1 request on a kept-alive
 * connection of the cluster's endpoint (pooled per event loop, cluster and endpoint), and the
 * answer, whole, becomes the stream's HEADERS, DATA and trailers. Pseudo-headers map to the request
 * line and {@code Host}; connection-specific headers are not carried either way.
 */
final class Http1Bridge {

    private static final Map<EventLoop, Map<HttpProxy.PoolKey, ArrayDeque<Channel>>> IDLE = new ConcurrentHashMap<>();

    private Http1Bridge() {
    }

    /** What became of one request. */
    sealed interface Outcome permits Answered, Failed {
    }

    /**
     * The upstream's answer, as HTTP/2 headers, body and trailers (null when there are none); the body
     * is the receiver's to release. {@code keepAlive}: the connection may carry another request.
     */
    record Answered(Http2Headers headers, ByteBuf body, Http2Headers trailers, boolean keepAlive) implements Outcome {
    }

    /**
     * No answer: {@code connect} when the connection could not be made ({@code cause} says why),
     * {@code timedOut} when the route's timeout passed first.
     */
    record Failed(boolean connect, boolean timedOut, Throwable cause, String reason) implements Outcome {
    }

    /**
     * Sends {@code request} (released here) to {@code endpoint} of {@code cluster}, on {@code loop},
     * and gives the outcome to {@code done} on that loop. As the HTTP/1.1 listener does: the most
     * recently used kept-alive connection is taken first, one idle for {@link HttpProxy#idleNanos} is
     * closed, and an idempotent request on a kept-alive connection that closes before its answer is
     * sent again once on a new connection ({@code onResend} is told), not reported as failed.
     */
    static void send(EventLoop loop, Class<? extends io.netty.channel.socket.SocketChannel> type, HttpProxy.Upstream cluster,
            InetSocketAddress endpoint, FullHttpRequest request, Duration timeout, Consumer<Outcome> done, Runnable onResend) {
        var key = new HttpProxy.PoolKey(cluster.name(), endpoint);
        ArrayDeque<Channel> idle = HttpProxy.loopPools(IDLE, loop, HttpProxy.idleNanos / 2, byKey -> HttpProxy.closeIdle(byKey, Http1Bridge::usable))
                .computeIfAbsent(key, k -> new ArrayDeque<>());
        Channel ch;
        long now = System.nanoTime();
        while ((ch = idle.pollLast()) != null) {
            if (!usable(ch, now)) {
                ch.close();
                continue;
            }
            if (!HttpProxy.IDEMPOTENT.contains(request.method())) {
                exchange(ch, idle, request, timeout, done);
                return;
            }
            // the request is kept until answered, to send it again should this connection close under it
            exchange(ch, idle, request.retainedDuplicate(), timeout, outcome -> {
                if (outcome instanceof Failed f && !f.connect() && !f.timedOut()) {
                    onResend.run();
                    connectAndExchange(loop, type, cluster, endpoint, idle, request, timeout, done);
                } else {
                    request.release();
                    done.accept(outcome);
                }
            });
            return;
        }
        connectAndExchange(loop, type, cluster, endpoint, idle, request, timeout, done);
    }

    /** Whether {@code loop} has an entry of pooled connections (for tests: it goes when the loop terminates). */
    static boolean hasPoolOf(EventLoop loop) {
        return IDLE.containsKey(loop);
    }

    /** Open, and not idle for longer than {@link HttpProxy#idleNanos}. */
    private static boolean usable(Channel ch, long now) {
        return ch.isActive() && ch.pipeline().get(Answer.NAME) instanceof Answer a && now - a.idleSince < HttpProxy.idleNanos;
    }

    private static void connectAndExchange(EventLoop loop, Class<? extends io.netty.channel.socket.SocketChannel> type, HttpProxy.Upstream cluster,
            InetSocketAddress endpoint, ArrayDeque<Channel> idle, FullHttpRequest request, Duration timeout, Consumer<Outcome> done) {
        cluster.connect(loop, type, endpoint,
                p -> p.addLast(new HttpClientCodec()).addLast(new HttpObjectAggregator(HttpProxy.MAX_BODY)).addLast(Answer.NAME, new Answer()))
                .addListener((ChannelFutureListener) f -> {
                    if (f.isSuccess()) {
                        exchange(f.channel(), idle, request, timeout, done);
                    } else {
                        request.release();
                        done.accept(new Failed(true, false, f.cause(), String.valueOf(f.cause())));
                    }
                });
    }

    private static void exchange(Channel ch, ArrayDeque<Channel> idle, FullHttpRequest request, Duration timeout, Consumer<Outcome> done) {
        var answer = (Answer) ch.pipeline().get(Answer.NAME);
        boolean keepAlive = HttpUtil.isKeepAlive(request);
        answer.begin(outcome -> {
            if (outcome instanceof Answered a && keepAlive && a.keepAlive() && ch.isActive()) {
                answer.idleSince = System.nanoTime();
                idle.addLast(ch); // taken last in, first out: the least idle first
            } else {
                ch.close();
            }
            done.accept(outcome);
        }, timeout);
        ch.writeAndFlush(request).addListener((ChannelFutureListener) f -> {
            if (!f.isSuccess()) {
                answer.fail("write failed: " + f.cause());
                ch.close();
            }
        });
    }

    /** The handler of one pooled connection: the answer of the request in flight. */
    private static final class Answer extends SimpleChannelInboundHandler<FullHttpResponse> {
        static final String NAME = "h1-answer";
        private Consumer<Outcome> waiting;
        private ScheduledFuture<?> deadline;
        private ChannelHandlerContext ctx;
        /** When it was last given back to the pool. */
        long idleSince = System.nanoTime();

        @Override
        public void handlerAdded(ChannelHandlerContext ctx) {
            this.ctx = ctx;
        }

        void begin(Consumer<Outcome> done, Duration timeout) {
            waiting = done;
            if (!timeout.isZero()) {
                deadline = ctx.executor().schedule(() -> {
                    complete(new Failed(false, true, null, "no answer within " + timeout.toMillis() + " ms"));
                    ctx.close();
                }, timeout.toMillis(), TimeUnit.MILLISECONDS);
            }
        }

        void fail(String reason) {
            complete(new Failed(false, false, null, reason));
        }

        private void complete(Outcome outcome) {
            if (deadline != null) {
                deadline.cancel(false);
                deadline = null;
            }
            var w = waiting;
            waiting = null;
            if (w != null) {
                w.accept(outcome);
            } else if (outcome instanceof Http1Bridge.Answered a) {
                a.body().release();
            }
        }

        @Override
        protected void channelRead0(ChannelHandlerContext ctx, FullHttpResponse res) {
            Http2Headers headers = HttpConversionUtil.toHttp2Headers(res, false);
            Http2Headers trailers = res.trailingHeaders().isEmpty() ? null : HttpConversionUtil.toHttp2Headers(res.trailingHeaders(), false);
            headers.remove(HttpProxy.CALLER_HEADER);
            headers.remove(HttpHeaderNames.CONTENT_LENGTH); // HTTP/2 frames the body itself; a wrong length would be refused
            complete(new Http1Bridge.Answered(headers, res.content().retain(), trailers, HttpUtil.isKeepAlive(res)));
        }

        @Override
        public void channelInactive(ChannelHandlerContext ctx) {
            fail("connection closed before the answer");
        }

        @Override
        public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
            fail(String.valueOf(cause));
            ctx.close();
        }
    }
}
