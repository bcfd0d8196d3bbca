package dev.isthmus.trust.ca;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.security.Signature;
import java.time.Duration;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class EmbeddedRootTest {

    @TempDir
    Path dir;

    @Test
    void aRestartReloadsTheSameRootAndKey() throws Exception {
        var first = EmbeddedRoot.loadOrCreate(dir.resolve("ca"), "us-east.acme.isthmus", Duration.ofDays(10));
        var second = EmbeddedRoot.loadOrCreate(dir.resolve("ca"), "us-east.acme.isthmus", Duration.ofDays(10));
        assertArrayEquals(first.certificate().getEncoded(), second.certificate().getEncoded());

        // The reloaded key still pairs with the certificate.
        var sign = Signature.getInstance("SHA256withECDSA");
        sign.initSign(second.key());
        sign.update(new byte[] {1, 2, 3});
        var verify = Signature.getInstance("SHA256withECDSA");
        verify.initVerify(first.certificate().getPublicKey());
        verify.update(new byte[] {1, 2, 3});
        assertTrue(verify.verify(sign.sign()));
    }

    @Test
    void theRootIsAP256CaNamedByItsTrustDomain() throws Exception {
        var root = EmbeddedRoot.loadOrCreate(dir, "eu-west.acme.isthmus", Duration.ofDays(10));
        assertEquals("EC", root.certificate().getPublicKey().getAlgorithm());
        assertTrue(root.certificate().getBasicConstraints() >= 0, "must be a CA certificate");
        var uris = root.certificate().getSubjectAlternativeNames().stream().map(l -> l.get(1).toString()).toList();
        assertEquals(java.util.List.of("spiffe://eu-west.acme.isthmus"), uris);
    }

    @Test
    void corruptFilesAreReportedWithTheirDirectory() throws Exception {
        Files.writeString(dir.resolve("root-key.pem"), "not a key");
        Files.writeString(dir.resolve("root-cert.pem"), "not a cert");
        var e = assertThrows(IOException.class, () -> EmbeddedRoot.loadOrCreate(dir, "x.acme.isthmus", Duration.ofDays(1)));
        assertTrue(e.getMessage().contains(dir.toString()), e.getMessage());
    }
}
