package dev.isthmus.proxy.identity;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.math.BigInteger;
import java.net.InetAddress;
import java.security.KeyPair;
import java.security.KeyPairGenerator;
import java.security.PrivateKey;
import java.security.cert.X509Certificate;
import java.security.spec.ECGenParameterSpec;
import java.time.Instant;
import java.util.Date;
import java.util.List;
import java.util.Map;
import java.util.Optional;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicReference;
import java.util.function.Predicate;
import javax.net.ssl.SSLHandshakeException;
import javax.net.ssl.SSLServerSocket;
import javax.net.ssl.SSLSocket;
import org.bouncycastle.asn1.x500.X500Name;
import org.bouncycastle.asn1.x509.BasicConstraints;
import org.bouncycastle.asn1.x509.Extension;
import org.bouncycastle.asn1.x509.GeneralName;
import org.bouncycastle.asn1.x509.GeneralNames;
import org.bouncycastle.asn1.x509.KeyUsage;
import org.bouncycastle.cert.jcajce.JcaX509CertificateConverter;
import org.bouncycastle.cert.jcajce.JcaX509v3CertificateBuilder;
import org.bouncycastle.operator.jcajce.JcaContentSignerBuilder;
import org.junit.jupiter.api.Test;

/** Real TLS 1.3 handshakes over loopback between SVIDs of two trust domains. */
public class SpiffeTlsTest {

    public record Ca(X509Certificate cert, PrivateKey key) {
    }

    static KeyPair p256() throws Exception {
        var g = KeyPairGenerator.getInstance("EC");
        g.initialize(new ECGenParameterSpec("secp256r1"));
        return g.generateKeyPair();
    }

    public static Ca root(String domain) throws Exception {
        var pair = p256();
        var name = new X500Name("O=" + domain + ",CN=root");
        var b = new JcaX509v3CertificateBuilder(name, BigInteger.valueOf(System.nanoTime()), Date.from(Instant.now().minusSeconds(60)),
                Date.from(Instant.now().plusSeconds(3600)), name, pair.getPublic());
        b.addExtension(Extension.basicConstraints, true, new BasicConstraints(true));
        b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.keyCertSign | KeyUsage.cRLSign));
        b.addExtension(Extension.subjectAlternativeName, false, new GeneralNames(new GeneralName(GeneralName.uniformResourceIdentifier,
                "spiffe://" + domain)));
        var cert = new JcaX509CertificateConverter().getCertificate(b.build(new JcaContentSignerBuilder("SHA256withECDSA").build(pair.getPrivate())));
        return new Ca(cert, pair.getPrivate());
    }

    public static SvidClient.Svid leaf(Ca ca, String id, Map<String, List<X509Certificate>> bundle) throws Exception {
        var pair = p256();
        var b = new JcaX509v3CertificateBuilder(ca.cert(), BigInteger.valueOf(System.nanoTime()), Date.from(Instant.now().minusSeconds(60)),
                Date.from(Instant.now().plusSeconds(600)), new X500Name("CN=workload"), pair.getPublic());
        b.addExtension(Extension.basicConstraints, true, new BasicConstraints(false));
        b.addExtension(Extension.keyUsage, true, new KeyUsage(KeyUsage.digitalSignature));
        b.addExtension(Extension.subjectAlternativeName, true, new GeneralNames(new GeneralName(GeneralName.uniformResourceIdentifier, id)));
        var cert = new JcaX509CertificateConverter().getCertificate(b.build(new JcaContentSignerBuilder("SHA256withECDSA").build(ca.key())));
        return new SvidClient.Svid(id, pair.getPrivate(), cert, List.of(ca.cert()), bundle, cert.getNotAfter().toInstant());
    }

    /** Runs one handshake and a byte each way; returns the ID the server saw, or throws the client's failure. */
    static String handshake(SvidClient.Svid server, Predicate<String> serverAccepts, SvidClient.Svid client, Predicate<String> clientAccepts)
            throws Exception {
        var serverRef = new AtomicReference<>(server);
        var clientRef = new AtomicReference<>(client);
        var serverCtx = SpiffeTls.context(() -> Optional.of(serverRef.get()), serverAccepts);
        var clientCtx = SpiffeTls.context(() -> Optional.of(clientRef.get()), clientAccepts);
        try (var listener = (SSLServerSocket) serverCtx.getServerSocketFactory().createServerSocket(0, 1, InetAddress.getLoopbackAddress())) {
            listener.setNeedClientAuth(true);
            listener.setEnabledProtocols(new String[] {"TLSv1.3"});
            CompletableFuture<String> seen = CompletableFuture.supplyAsync(() -> {
                try (var s = (SSLSocket) listener.accept()) {
                    s.setSoTimeout(5000);
                    s.startHandshake();
                    int b = s.getInputStream().read();
                    s.getOutputStream().write(b + 1);
                    return SpiffeTls.spiffeId((X509Certificate) s.getSession().getPeerCertificates()[0]).orElseThrow();
                } catch (IOException e) {
                    return "server failed: " + e.getMessage();
                }
            });
            try (var s = (SSLSocket) clientCtx.getSocketFactory().createSocket(InetAddress.getLoopbackAddress(), listener.getLocalPort())) {
                s.setSoTimeout(5000);
                s.setEnabledProtocols(new String[] {"TLSv1.3"});
                s.startHandshake();
                s.getOutputStream().write(41);
                assertEquals(42, s.getInputStream().read());
                assertEquals(server.spiffeId(), SpiffeTls.spiffeId((X509Certificate) s.getSession().getPeerCertificates()[0]).orElseThrow());
            }
            return seen.get(10, TimeUnit.SECONDS);
        }
    }

    @Test
    void workloadsOfTwoTrustDomainsAuthenticateEachOtherWithTheFederatedBundle() throws Exception {
        Ca east = root("us-east.acme.isthmus");
        Ca west = root("eu-west.acme.isthmus");
        var bundle = Map.of("us-east.acme.isthmus", List.of(east.cert()), "eu-west.acme.isthmus", List.of(west.cert()));
        var orders = leaf(east, "spiffe://us-east.acme.isthmus/ns/shop/sa/orders", bundle);
        var catalog = leaf(west, "spiffe://eu-west.acme.isthmus/ns/shop/sa/catalog", bundle);
        assertEquals(orders.spiffeId(), handshake(catalog, id -> true, orders, catalog.spiffeId()::equals));
    }

    @Test
    void aRootOfOneTrustDomainDoesNotVouchForAnotherDomainsIds() throws Exception {
        Ca east = root("us-east.acme.isthmus");
        Ca west = root("eu-west.acme.isthmus");
        var bundle = Map.of("us-east.acme.isthmus", List.of(east.cert()), "eu-west.acme.isthmus", List.of(west.cert()));
        var catalog = leaf(west, "spiffe://eu-west.acme.isthmus/ns/shop/sa/catalog", bundle);
        // us-east's CA signs a certificate claiming an eu-west identity: valid signature, wrong domain's root.
        var forged = leaf(east, "spiffe://eu-west.acme.isthmus/ns/shop/sa/catalog", bundle);
        var orders = leaf(east, "spiffe://us-east.acme.isthmus/ns/shop/sa/orders", bundle);
        var e = assertThrows(SSLHandshakeException.class, () -> handshake(forged, id -> true, orders, id -> true));
        assertTrue(e.getMessage().contains("does not verify against the 1 root(s) of trust domain 'eu-west.acme.isthmus'"), e.getMessage());
        // a domain missing from the bundle
        var lonely = Map.of("us-east.acme.isthmus", List.of(east.cert()));
        var ordersWithoutWest = leaf(east, "spiffe://us-east.acme.isthmus/ns/shop/sa/orders", lonely);
        e = assertThrows(SSLHandshakeException.class, () -> handshake(catalog, id -> true, ordersWithoutWest, id -> true));
        assertTrue(e.getMessage().contains("no trusted roots for trust domain 'eu-west.acme.isthmus'"), e.getMessage());
    }

    @Test
    void aPeerWithAnotherIdentityThanExpectedIsRefused() throws Exception {
        Ca east = root("us-east.acme.isthmus");
        var bundle = Map.of("us-east.acme.isthmus", List.of(east.cert()));
        var orders = leaf(east, "spiffe://us-east.acme.isthmus/ns/shop/sa/orders", bundle);
        var login = leaf(east, "spiffe://us-east.acme.isthmus/ns/shop/sa/login", bundle);
        var e = assertThrows(SSLHandshakeException.class,
                () -> handshake(login, id -> true, orders, "spiffe://us-east.acme.isthmus/ns/shop/sa/catalog"::equals));
        assertTrue(e.getMessage().contains("peer spiffe://us-east.acme.isthmus/ns/shop/sa/login is not the identity expected here"), e.getMessage());
    }

    @Test
    void theKeyManagerPresentsTheCurrentCertificateAtEachHandshake() throws Exception {
        Ca east = root("us-east.acme.isthmus");
        Ca next = root("us-east.acme.isthmus");
        var bundle = Map.of("us-east.acme.isthmus", List.of(east.cert(), next.cert()));
        var first = leaf(east, "spiffe://us-east.acme.isthmus/ns/shop/sa/orders", bundle);
        var renewed = leaf(next, "spiffe://us-east.acme.isthmus/ns/shop/sa/orders", bundle);
        var current = new AtomicReference<>(first);
        var km = SpiffeTls.keyManager(() -> Optional.of(current.get()));
        String a1 = km.chooseServerAlias("EC", null, null);
        current.set(renewed);
        String a2 = km.chooseServerAlias("EC", null, null);
        assertEquals(first.certificate(), km.getCertificateChain(a1)[0], "a handshake under way keeps its certificate");
        assertEquals(first.key(), km.getPrivateKey(a1));
        assertEquals(renewed.certificate(), km.getCertificateChain(a2)[0], "the next handshake presents the renewed one");
        assertEquals(1, km.getCertificateChain(a2).length, "roots are not sent");
        assertEquals(null, km.chooseServerAlias("RSA", null, null), "no RSA key to offer");
    }
}
