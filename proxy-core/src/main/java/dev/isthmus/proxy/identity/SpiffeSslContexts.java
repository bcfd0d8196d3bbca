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

    /** A server context that requires a client certificate and accepts callers {@code peerAllowed} accepts. */
    public static SslContext server(Supplier<Optional<SvidClient.Svid>> svid, Predicate<String> peerAllowed) throws SSLException {
        return SslContextBuilder.forServer(keyManagers(svid)).sslProvider(sslProvider()).protocols("TLSv1.3")
                .trustManager(trustManagers(svid, peerAllowed)).clientAuth(ClientAuth.REQUIRE).build();
    }

    /** A client context that presents the SVID and accepts only a server {@code peerAllowed} accepts. */
    public static SslContext client(Supplier<Optional<SvidClient.Svid>> svid, Predicate<String> peerAllowed) throws SSLException {
        return SslContextBuilder.forClient().sslProvider(sslProvider()).protocols("TLSv1.3").keyManager(keyManagers(svid))
                .trustManager(trustManagers(svid, peerAllowed)).build();
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
