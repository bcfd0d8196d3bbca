package dev.isthmus.proxy.identity;

import io.netty.handler.ssl.ClientAuth;
import io.netty.handler.ssl.OpenSsl;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import io.netty.handler.ssl.util.SimpleKeyManagerFactory;
import io.netty.handler.ssl.util.SimpleTrustManagerFactory;
import java.security.KeyStore;
import java.util.Optional;
import java.util.function.Predicate;
import java.util.function.Supplier;
import javax.net.ssl.KeyManager;
import javax.net.ssl.ManagerFactoryParameters;
import javax.net.ssl.SSLException;
import javax.net.ssl.TrustManager;

/**
 * Netty TLS contexts for mTLS between proxies with SPIFFE identities ({@link SpiffeTls}): TLS 1.3
 * only, BoringSSL (netty-tcnative) when it loads, else the JDK's TLS. The key manager presents the
 * SVID current at each handshake, so renewals and root rotations need no new context.
 */
public final class SpiffeSslContexts {

    private SpiffeSslContexts() {
    }

    /** The TLS implementation in use: {@code BoringSSL} or {@code JDK}. */
    public static String provider() {
        return OpenSsl.isAvailable() ? "BoringSSL" : "JDK";
    }

    private static SslProvider sslProvider() {
        return OpenSsl.isAvailable() ? SslProvider.OPENSSL : SslProvider.JDK;
    }

    /** ALPN names: HTTP/2 and HTTP/1.1. */
    public static final String H2 = "h2";
    public static final String HTTP_1_1 = "http/1.1";

    /** A server context that requires a client certificate and accepts callers {@code peerAllowed} accepts. */
    public static SslContext server(Supplier<Optional<SvidClient.Svid>> svid, Predicate<String> peerAllowed) throws SSLException {
        return server(svid, peerAllowed, new String[0]);
    }

    /**
     * The same, selecting by ALPN among {@code alpn} (in the server's order of preference) when the
     * client offers any; a client that offers none of them is still served (no ALPN extension back).
     */
    public static SslContext server(Supplier<Optional<SvidClient.Svid>> svid, Predicate<String> peerAllowed, String... alpn) throws SSLException {
        return alpn(SslContextBuilder.forServer(keyManagers(svid)).sslProvider(sslProvider()).protocols("TLSv1.3")
                .trustManager(trustManagers(svid, peerAllowed)).clientAuth(ClientAuth.REQUIRE), alpn).build();
    }

    /** A client context that presents the SVID and accepts only a server {@code peerAllowed} accepts. */
    public static SslContext client(Supplier<Optional<SvidClient.Svid>> svid, Predicate<String> peerAllowed) throws SSLException {
        return client(svid, peerAllowed, new String[0]);
    }

    /** The same, offering {@code alpn} (e.g. {@link #H2} for a cluster that speaks HTTP/2, as Envoy does). */
    public static SslContext client(Supplier<Optional<SvidClient.Svid>> svid, Predicate<String> peerAllowed, String... alpn) throws SSLException {
        return alpn(SslContextBuilder.forClient().sslProvider(sslProvider()).protocols("TLSv1.3").keyManager(keyManagers(svid))
                .trustManager(trustManagers(svid, peerAllowed)), alpn).build();
    }

    private static SslContextBuilder alpn(SslContextBuilder b, String... alpn) {
        if (alpn.length == 0) {
            return b;
        }
        return b.applicationProtocolConfig(new io.netty.handler.ssl.ApplicationProtocolConfig(io.netty.handler.ssl.ApplicationProtocolConfig.Protocol.ALPN,
                io.netty.handler.ssl.ApplicationProtocolConfig.SelectorFailureBehavior.NO_ADVERTISE,
                io.netty.handler.ssl.ApplicationProtocolConfig.SelectedListenerFailureBehavior.ACCEPT, alpn));
    }

    /** The protocol a finished handshake agreed by ALPN; empty when none was. */
    public static Optional<String> negotiated(io.netty.handler.ssl.SslHandler ssl) {
        return Optional.ofNullable(ssl.applicationProtocol());
    }

    /**
     * Sends {@code sni} as the server name of a client handshake. Istio-style names
     * ({@code outbound_.8080_._.name.ns.svc.cluster.local}) have underscores: Netty does not pass
     * them to BoringSSL by itself (seen: the ClientHello went out without SNI) and the JDK's
     * {@code SNIHostName} refuses them, so with BoringSSL the name is set on the native handle; with
     * the JDK's TLS only names the JDK accepts can be sent.
     */
    public static void serverName(io.netty.handler.ssl.SslHandler ssl, String sni) {
        if (sni == null || sni.isEmpty()) {
            return;
        }
        if (ssl.engine() instanceof io.netty.handler.ssl.ReferenceCountedOpenSslEngine openssl) {
            io.netty.internal.tcnative.SSL.setTlsExtHostName(openssl.sslPointer(), sni);
            return;
        }
        var params = ssl.engine().getSSLParameters();
        params.setServerNames(java.util.List.of(new javax.net.ssl.SNIHostName(sni)));
        ssl.engine().setSSLParameters(params);
    }

    /** The verified SPIFFE ID of the peer of a finished handshake; empty when it showed none. */
    public static Optional<String> peerId(io.netty.handler.ssl.SslHandler ssl) {
        try {
            var certs = ssl.engine().getSession().getPeerCertificates();
            return certs.length == 0 ? Optional.empty() : SpiffeTls.spiffeId((java.security.cert.X509Certificate) certs[0]);
        } catch (javax.net.ssl.SSLPeerUnverifiedException e) {
            return Optional.empty();
        }
    }

    private static SimpleKeyManagerFactory keyManagers(Supplier<Optional<SvidClient.Svid>> svid) {
        KeyManager km = SpiffeTls.keyManager(svid);
        return new SimpleKeyManagerFactory() {
            @Override
            protected void engineInit(KeyStore keyStore, char[] password) {
            }

            @Override
            protected void engineInit(ManagerFactoryParameters params) {
            }

            @Override
            protected KeyManager[] engineGetKeyManagers() {
                return new KeyManager[] {km};
            }
        };
    }

    private static SimpleTrustManagerFactory trustManagers(Supplier<Optional<SvidClient.Svid>> svid, Predicate<String> peerAllowed) {
        TrustManager tm = SpiffeTls.trustManager(svid, peerAllowed);
        return new SimpleTrustManagerFactory() {
            @Override
            protected void engineInit(KeyStore keyStore) {
            }

            @Override
            protected void engineInit(ManagerFactoryParameters params) {
            }

            @Override
            protected TrustManager[] engineGetTrustManagers() {
                return new TrustManager[] {tm};
            }
        };
    }
}
