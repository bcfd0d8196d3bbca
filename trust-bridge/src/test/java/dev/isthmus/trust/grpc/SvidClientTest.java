package dev.isthmus.trust.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.proxy.identity.SvidClient;
import io.quarkus.test.junit.QuarkusTest;
import java.time.Duration;
import java.time.Instant;
import java.util.List;
import java.util.concurrent.CopyOnWriteArrayList;
import org.junit.jupiter.api.Test;

/** proxy-core's SvidClient against this bridge: first certificate, renewal at half-life, refusal and retry. */
@QuarkusTest
class SvidClientTest {

    static void await(String what, Duration timeout, java.util.function.BooleanSupplier check) throws InterruptedException {
        Instant deadline = Instant.now().plus(timeout);
        while (!check.getAsBoolean()) {
            if (Instant.now().isAfter(deadline)) {
                throw new AssertionError(what + " did not happen within " + timeout.toMillis() + " ms");
            }
            Thread.sleep(50);
        }
    }

    @Test
    void getsACertificateAndRenewsItAtHalfLifeWithANewKey() throws Exception {
        List<SvidClient.Svid> seen = new CopyOnWriteArrayList<>();
        try (var client = new SvidClient("127.0.0.1:18291", WorkloadCertificatesServiceTest.ID, WorkloadCertificatesServiceTest.CREDENTIAL,
                Duration.ofSeconds(4))) {
            client.onRotation(seen::add);
            client.start();
            await("first certificate", Duration.ofSeconds(10), () -> seen.size() >= 1);
            var first = seen.get(0);
            first.certificate().verify(first.trustRoots().get(0).getPublicKey());
            assertEquals(WorkloadCertificatesServiceTest.ID, first.spiffeId());
            await("renewal at half-life", Duration.ofSeconds(6), () -> seen.size() >= 2);
            var second = seen.get(1);
            assertNotEquals(first.certificate().getSerialNumber(), second.certificate().getSerialNumber());
            assertNotEquals(first.certificate().getPublicKey(), second.certificate().getPublicKey(), "a new key per certificate");
            assertTrue(second.notAfter().isAfter(first.notAfter()));
            assertEquals(second, client.current().orElseThrow());
        }
    }

    @Test
    void aRefusedRequestIsReportedAndRetriedWithoutACertificate() throws Exception {
        try (var client = new SvidClient("127.0.0.1:18291", WorkloadCertificatesServiceTest.ID, "wrong-credential-000000", Duration.ZERO)) {
            client.start();
            await("the refusal", Duration.ofSeconds(10), () -> client.lastError().contains("UNAUTHENTICATED"));
            assertTrue(client.current().isEmpty());
        }
    }

    @Test
    void aCredentialReplacedInPlaceIsTheOneSentAtTheRetry() throws Exception {
        // As a projected service-account token: the file is rewritten, the client reads it again at each request.
        var credential = new java.util.concurrent.atomic.AtomicReference<>("expired-credential-0000");
        try (var client = new SvidClient("127.0.0.1:18291", WorkloadCertificatesServiceTest.ID, credential::get, Duration.ZERO)) {
            client.start();
            await("the refusal", Duration.ofSeconds(10), () -> client.lastError().contains("UNAUTHENTICATED"));
            credential.set(WorkloadCertificatesServiceTest.CREDENTIAL);
            await("a certificate with the new credential", Duration.ofSeconds(10), () -> client.current().isPresent());
            assertEquals(WorkloadCertificatesServiceTest.ID, client.current().orElseThrow().spiffeId());
        }
    }
}
