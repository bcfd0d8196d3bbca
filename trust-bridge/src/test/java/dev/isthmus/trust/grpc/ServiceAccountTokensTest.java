package dev.isthmus.trust.grpc;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.isthmus.trust.ca.SvidIssuer;
import io.fabric8.kubernetes.api.model.authentication.TokenReviewBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientBuilder;
import io.fabric8.kubernetes.client.server.mock.EnableKubernetesMockClient;
import io.fabric8.kubernetes.client.server.mock.KubernetesMockServer;
import io.grpc.Status;
import java.util.List;
import org.junit.jupiter.api.Test;

/**
 * Service-account tokens checked with TokenReview, against fabric8's mock API server. TokenReview
 * is computed by the API server, so the mock runs in expectations mode (CRUD mode would echo the
 * review without a status): each test says what the API server answers.
 */
@EnableKubernetesMockClient
class ServiceAccountTokensTest {

    static KubernetesMockServer server;
    static KubernetesClient client;
    static final String PATH = "/apis/authentication.k8s.io/v1/tokenreviews";
    static final String JWT = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzeXN0ZW0ifQ.c2ln";

    static void answer(boolean authenticated, String user, String error) {
        server.expect().post().withPath(PATH).andReturn(201, new TokenReviewBuilder().withNewStatus().withAuthenticated(authenticated)
                .withError(error).withNewUser().withUsername(user).endUser().endStatus().build()).once();
    }

    @Test
    void anAuthenticatedServiceAccountMayHaveExactlyItsOwnId() throws Exception {
        answer(true, "system:serviceaccount:shop:product-catalog", null);
        assertEquals("spiffe://eu-west.acme.isthmus/ns/shop/sa/product-catalog",
                new ServiceAccountTokens(client, List.of()).allowedId(JWT, "eu-west.acme.isthmus"));
    }

    @Test
    void anExpiredOrUnknownTokenIsUnauthenticatedWithTheApiServersReason() {
        answer(false, null, "token has expired");
        var e = assertThrows(SvidIssuer.Refusal.class, () -> new ServiceAccountTokens(client, List.of()).allowedId(JWT, "td"));
        assertEquals(Status.Code.UNAUTHENTICATED, e.code());
        assertTrue(e.getMessage().contains("token has expired"), e.getMessage());
    }

    @Test
    void aTokenOfAPersonIsNotAServiceAccount() {
        answer(true, "alice@example.com", null);
        var e = assertThrows(SvidIssuer.Refusal.class, () -> new ServiceAccountTokens(client, List.of()).allowedId(JWT, "td"));
        assertEquals(Status.Code.PERMISSION_DENIED, e.code());
    }

    @Test
    void anUnreachableApiServerIsUnavailable() {
        try (var gone = new KubernetesClientBuilder().withConfig(new io.fabric8.kubernetes.client.ConfigBuilder()
                .withMasterUrl("https://127.0.0.1:1").withRequestTimeout(2000).withConnectionTimeout(1000).withRequestRetryBackoffLimit(0).build()).build()) {
            var e = assertThrows(SvidIssuer.Refusal.class, () -> new ServiceAccountTokens(gone, List.of()).allowedId(JWT, "td"));
            assertEquals(Status.Code.UNAVAILABLE, e.code());
        }
    }

    @Test
    void onlyJwtShapedCredentialsAreTakenForServiceAccountTokens() {
        assertTrue(ServiceAccountTokens.looksLikeJwt(JWT));
        assertFalse(ServiceAccountTokens.looksLikeJwt("test-bootstrap-credential-0123456789"));
        assertFalse(ServiceAccountTokens.looksLikeJwt(null));
    }
}
