package dev.isthmus.e2e;

import io.netty.bootstrap.ServerBootstrap;
import io.netty.channel.Channel;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.ChannelInitializer;
import io.netty.channel.EventLoopGroup;
import io.netty.channel.SimpleChannelInboundHandler;
import io.netty.channel.nio.NioEventLoopGroup;
import io.netty.channel.socket.nio.NioServerSocketChannel;
import io.netty.handler.codec.http.HttpObjectAggregator;
import io.netty.handler.codec.http.HttpServerCodec;
import io.netty.handler.codec.http.websocketx.TextWebSocketFrame;
import io.netty.handler.codec.http.websocketx.WebSocketServerProtocolHandler;
import io.netty.util.AttributeKey;
import java.io.ByteArrayOutputStream;
import java.io.DataInputStream;
import java.io.IOException;
import java.io.InputStream;
import java.io.OutputStream;
import java.net.InetSocketAddress;
import java.net.Socket;
import java.nio.charset.StandardCharsets;
import java.util.Base64;
import java.util.concurrent.ThreadLocalRandom;

/**
 * A WebSocket echo app for the tests (Netty's WebSocket server on {@code /chat}): answers each text
 * frame with {@code echo <text> from <caller>}, the caller being the {@code x-isthmus-peer-identity}
 * header of the upgrade request. {@link Client} is a minimal RFC 6455 client over a plain socket, so
 * the test chooses the Host header (the sidecar routes on it).
 */
final class WebSocketEcho implements AutoCloseable {

    private static final AttributeKey<String> CALLER = AttributeKey.valueOf("caller");

    private final EventLoopGroup group;
    private final Channel server;

    private WebSocketEcho(EventLoopGroup group, Channel server) {
        this.group = group;
        this.server = server;
    }

    @SuppressWarnings("deprecation")
    static WebSocketEcho start(int port) throws InterruptedException {
        var group = new NioEventLoopGroup(1);
        Channel server = new ServerBootstrap().group(group).channel(NioServerSocketChannel.class).childHandler(new ChannelInitializer<>() {
            @Override
            protected void initChannel(Channel ch) {
                ch.pipeline().addLast(new HttpServerCodec(), new HttpObjectAggregator(65536), new WebSocketServerProtocolHandler("/chat"),
                        new SimpleChannelInboundHandler<TextWebSocketFrame>() {
                            @Override
                            public void userEventTriggered(ChannelHandlerContext ctx, Object evt) {
                                if (evt instanceof WebSocketServerProtocolHandler.HandshakeComplete hc) {
                                    ctx.channel().attr(CALLER).set(hc.requestHeaders().get("x-isthmus-peer-identity"));
                                }
                                ctx.fireUserEventTriggered(evt);
                            }

                            @Override
                            protected void channelRead0(ChannelHandlerContext ctx, TextWebSocketFrame frame) {
                                ctx.writeAndFlush(new TextWebSocketFrame("echo " + frame.text() + " from " + ctx.channel().attr(CALLER).get()));
                            }
                        });
            }
        }).bind(new InetSocketAddress("127.0.0.1", port)).sync().channel();
        return new WebSocketEcho(group, server);
    }

    @Override
    public void close() {
        server.close().syncUninterruptibly();
        group.shutdownGracefully().syncUninterruptibly();
    }

    /** One client connection after its upgrade request: the status answered, then text frames. */
    record Client(int status, InputStream in, OutputStream out) {

        static Client handshake(Socket socket, String host, String path) throws IOException {
            byte[] nonce = new byte[16];
            ThreadLocalRandom.current().nextBytes(nonce);
            String request = "GET " + path + " HTTP/1.1\r\nHost: " + host + "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                    + "Sec-WebSocket-Key: " + Base64.getEncoder().encodeToString(nonce) + "\r\nSec-WebSocket-Version: 13\r\n\r\n";
            var out = socket.getOutputStream();
            out.write(request.getBytes(StandardCharsets.US_ASCII));
            out.flush();
            var in = socket.getInputStream();
            var head = new ByteArrayOutputStream();
            while (!head.toString(StandardCharsets.US_ASCII).endsWith("\r\n\r\n")) {
                int b = in.read();
                if (b < 0) {
                    return new Client(-1, in, out);
                }
                head.write(b);
            }
            String statusLine = head.toString(StandardCharsets.US_ASCII).lines().findFirst().orElse("");
            String[] parts = statusLine.split(" ");
            return new Client(parts.length > 1 ? Integer.parseInt(parts[1]) : -1, in, out);
        }

        void sendText(String text) throws IOException {
            byte[] payload = text.getBytes(StandardCharsets.UTF_8);
            if (payload.length > 125) {
                throw new IllegalArgumentException("short frames only");
            }
            byte[] mask = new byte[4];
            ThreadLocalRandom.current().nextBytes(mask);
            var frame = new ByteArrayOutputStream();
            frame.write(0x81);
            frame.write(0x80 | payload.length);
            frame.write(mask);
            for (int i = 0; i < payload.length; i++) {
                frame.write(payload[i] ^ mask[i % 4]);
            }
            out.write(frame.toByteArray());
            out.flush();
        }

        String readText() throws IOException {
            var data = new DataInputStream(in);
            int first = data.readUnsignedByte();
            int len = data.readUnsignedByte() & 0x7f;
            if (len == 126) {
                len = data.readUnsignedShort();
            } else if (len == 127) {
                throw new IOException("frame too long for the test client");
            }
            byte[] payload = new byte[len];
            data.readFully(payload);
            if ((first & 0x0f) != 1) {
                throw new IOException("expected a text frame, got opcode " + (first & 0x0f));
            }
            return new String(payload, StandardCharsets.UTF_8);
        }
    }
}
