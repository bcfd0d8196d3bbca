package dev.isthmus.trust.grpc;

import dev.isthmus.trust.ca.SvidIssuer;
import io.fabric8.kubernetes.api.model.authentication.TokenReview;
import io.fabric8.kubernetes.api.model.authentication.TokenReviewBuilder;
import io.fabric8.kubernetes.client.KubernetesClient;
import io.fabric8.kubernetes.client.KubernetesClientException;
import io.grpc.Status;
import java.util.List;

/**
 * Kubernetes service-account tokens as bootstrap credentials: the token is sent to the API server's
 * TokenReview; an authenticated {@code system:serviceaccount:<namespace>:<account>} may have exactly
 * {@code spiffe://<trust-domain>/ns/<namespace>/sa/<account>}. A token the API server does not
 * authenticate (unknown, expired, wrong audience) is {@code UNAUTHENTICATED} with its reason; an API
 * server that cannot be reached is {@code UNAVAILABLE}.
 */
public final class ServiceAccountTokens {

    private static final String PREFIX = "system:serviceaccount:";

    private final KubernetesClient client;
    private final List<String> audiences;

    public ServiceAccountTokens(KubernetesClient client, List<String> audiences) {
        this.client = client;
        this.audiences = List.copyOf(audiences);
    }

    /** True if the text has the shape of a JWT (three dot-separated parts), as service-account tokens do. */
    public static boolean looksLikeJwt(String credential) {
        return credential != null && credential.strip().split("\\.", -1).length == 3 && credential.strip().startsWith("ey");
    }

    /** The SPIFFE ID the token's service account may have in {@code trustDomain}. */
    public String allowedId(String token, String trustDomain) throws SvidIssuer.Refusal {
        TokenReview review;
        try {
            review = client.tokenReviews().create(new TokenReviewBuilder().withNewSpec().withToken(token.strip())
                    .withAudiences(audiences.isEmpty() ? null : audiences).endSpec().build());
        } catch (KubernetesClientException e) {
            throw new SvidIssuer.Refusal(Status.Code.UNAVAILABLE, "kubernetes_unavailable",
                    "the Kubernetes API server did not review the token: " + e.getMessage());
        }
        var status = review.getStatus();
        if (status == null || !Boolean.TRUE.equals(status.getAuthenticated())) {
            String why = status == null || status.getError() == null || status.getError().isBlank() ? "not authenticated" : status.getError();
            throw new SvidIssuer.Refusal(Status.Code.UNAUTHENTICATED, "token_not_authenticated",
                    "the service-account token was not accepted by the Kubernetes API server: " + why);
        }
        String user = status.getUser() == null ? "" : status.getUser().getUsername();
        if (user == null || !user.startsWith(PREFIX) || user.substring(PREFIX.length()).split(":").length != 2) {
            throw new SvidIssuer.Refusal(Status.Code.PERMISSION_DENIED, "not_a_service_account",
                    "the token belongs to '" + user + "', not to a service account");
        }
        String[] nsSa = user.substring(PREFIX.length()).split(":");
        return "spiffe://" + trustDomain + "/ns/" + nsSa[0] + "/sa/" + nsSa[1];
    }
}
