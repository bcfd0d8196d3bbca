package dev.isthmus.e2e;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.proxy.identity.SvidClient;
import java.io.StringWriter;
import java.net.ServerSocket;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.time.Instant;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.bouncycastle.openssl.jcajce.JcaPEMWriter;
import org.bouncycastle.openssl.jcajce.JcaPKCS8Generator;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.extension.RegisterExtension;

/**
 * Certificates of two trust domains, each from its region's trust bridge, checked by OpenSSL: a
 * us-east SVID verifies against eu-west's federated bundle (the roots eu-west's proxies trust),
 * and a TLS 1.3 handshake with client certificates between an eu-west server and a us-east client
 * succeeds, each side verifying the other with its own federated bundle.
 */
class CrossDomainTlsIT {

    @RegisterExtension
    static final LocalFederationExtension FED = new LocalFederationExtension(29000, "us-east", "eu-west");

    record Identity(Path cert, Path key, Path bundle, SvidClient client) {
    }

    static Identity identity(String region, String sa, Path dir) throws Exception {
        String credential = Files.readString(FED.topology().workloadTokenFile(region)).strip();
        var client = new SvidClient("127.0.0.1:" + FED.topology().trustBridgeGrpcPort(region),
                "spiffe://" + region + ".acme.isthmus/ns/shop/sa/" + sa, credential, Duration.ZERO);
        client.start();
        Instant deadline = Instant.now().plusSeconds(30);
        while ((client.current().isEmpty() || client.current().get().trustRoots().size() < 2) && Instant.now().isBefore(deadline)) {
            Thread.sleep(100);
        }
        var svid = client.current().orElseThrow(() -> new AssertionError(region + ": no certificate: " + client.lastError()));
        assertEquals(2, svid.trustRoots().size(), region + " trusts its own root and the other region's");
        Path cert = dir.resolve(region + "-cert.pem");
        Path key = dir.resolve(region + "-key.pem");
        Path bundle = dir.resolve(region + "-bundle.pem");
        Files.writeString(cert, pem(svid.certificate()));
        Files.writeString(key, pem(new JcaPKCS8Generator(svid.key(), null)));
        var roots = new StringBuilder();
        for (var r : svid.trustRoots()) {
            roots.append(pem(r));
        }
        Files.writeString(bundle, roots);
        return new Identity(cert, key, bundle, client);
    }

    static String pem(Object o) throws Exception {
        var out = new StringWriter();
        try (var w = new JcaPEMWriter(out)) {
            w.writeObject(o);
        }
        return out.toString();
    }

    record Run(int exit, String output) {
    }

    static Run run(List<String> command, String input) throws Exception {
        var p = new ProcessBuilder(command).redirectErrorStream(true).start();
        p.getOutputStream().write(input.getBytes());
        p.getOutputStream().close();
        String out = new String(p.getInputStream().readAllBytes());
        assertTrue(p.waitFor(30, TimeUnit.SECONDS), "openssl did not finish: " + command);
        return new Run(p.exitValue(), out);
    }

    @Test
    void svidsOfTwoTrustDomainsVerifyWithEachOthersBundleAndShakeHandsOverTls13() throws Exception {
        Path dir = Files.createTempDirectory(LocalFederationExtension.home().resolve("e2e/target"), "tls-");
        var us = identity("us-east", "orders", dir);
        var eu = identity("eu-west", "product-catalog", dir);
        try {
            var verify = run(List.of("openssl", "verify", "-CAfile", eu.bundle().toString(), us.cert().toString()), "");
            assertEquals(0, verify.exit(), verify.output());
            assertTrue(verify.output().contains(": OK"), verify.output());
            var reverse = run(List.of("openssl", "verify", "-CAfile", us.bundle().toString(), eu.cert().toString()), "");
            assertEquals(0, reverse.exit(), reverse.output());

            int port;
            try (var s = new ServerSocket(0, 1, java.net.InetAddress.getByName("127.0.0.1"))) {
                port = s.getLocalPort();
            }
            var server = new ProcessBuilder("openssl", "s_server", "-accept", "127.0.0.1:" + port, "-tls1_3", "-cert", eu.cert().toString(),
                    "-key", eu.key().toString(), "-CAfile", eu.bundle().toString(), "-Verify", "1", "-verify_return_error", "-naccept", "1",
                    "-quiet").redirectErrorStream(true).start();
            try {
                Thread.sleep(1000);
                var client = run(new ArrayList<>(List.of("openssl", "s_client", "-connect", "127.0.0.1:" + port, "-tls1_3", "-cert",
                        us.cert().toString(), "-key", us.key().toString(), "-CAfile", eu.bundle().toString().replace("eu-west", "us-east"),
                        "-verify_return_error", "-brief")), "");
                assertEquals(0, client.exit(), client.output());
                assertTrue(client.output().contains("TLSv1.3"), client.output());
                assertTrue(client.output().contains("Verification: OK"), client.output());
            } finally {
                server.destroyForcibly();
            }
        } finally {
            us.client().close();
            eu.client().close();
        }
    }
}
