package dev.isthmus.api.policy;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.nio.file.Path;
import java.util.List;
import java.util.Map;
import java.util.Set;
import org.junit.jupiter.api.Test;

class PolicyValidatorTest {

    private static PolicyValidator.Result validate(String file, String yaml) {
        return PolicyValidator.validate(Map.of(file, yaml), null);
    }

    private static List<String> errors(PolicyValidator.Result r) {
        return r.problems().stream().map(Object::toString).toList();
    }

    private static final String CANARY = """
            apiVersion: isthmus.dev/v1alpha1
            kind: TrafficPolicy
            metadata:
              name: canary
              namespace: shop
            spec:
              service: product-catalog
              routes:
              - destinations:
                - subset: v1
                  weight: 90
                - subset: v2
                  weight: 10
            """;

    @Test
    void theExampleRepositoryIsValid() throws Exception {
        var result = PolicyValidator.validateDirectory(Path.of("../deploy/gitops-example"), null);
        assertTrue(result.ok(), errors(result).toString());
        var canary = result.bundle().trafficFor("shop/product-catalog").orElseThrow();
        assertEquals(List.of(90, 10), canary.routes().get(0).destinations().stream().map(Policies.Destination::weight).toList());
        assertEquals(List.of("eu-west", "ap-south", "us-east"), result.bundle().failoverFor("shop/product-catalog").orElseThrow().regions());
        assertEquals(2, result.bundle().authorization().size());
        assertEquals("STRICT", result.bundle().mesh().get(0).mtls());
    }

    @Test
    void weightsThatDoNotSumTo100AreRefusedNamingFileLineAndField() {
        var r = validate("shop/canary.yaml", CANARY.replace("weight: 10", "weight: 20"));
        assertFalse(r.ok());
        assertEquals(List.of("shop/canary.yaml:9: spec.routes[0].destinations: weights must sum to 100, they sum to 110"), errors(r));
        assertEquals(Policies.Bundle.EMPTY, r.bundle(), "nothing of a refused commit is accepted");
    }

    @Test
    void unknownFieldsAreRefusedWithTheirLine() {
        var r = validate("a.yaml", CANARY.replace("  service: product-catalog", "  service: product-catalog\n  retry: 3"));
        assertEquals(List.of("a.yaml:8: spec.retry: unknown field; known here: [circuitBreaker, outlierDetection, routes, service]"), errors(r));
    }

    @Test
    void aBadValueNamesTheFieldPath() {
        var r = validate("a.yaml", CANARY.replace("weight: 90", "weight: ninety"));
        assertEquals("a.yaml:11: spec.routes[0].destinations[0].weight: must be a whole number, found 'ninety'", errors(r).get(0));
        r = validate("a.yaml", CANARY.replace("- destinations:", "- timeout: soon\n    destinations:"));
        assertEquals(List.of("a.yaml:9: spec.routes[0].timeout: must be a positive duration such as 500ms, 2s, 1m or 1h, found 'soon'"), errors(r));
    }

    @Test
    void retryConditionsAreEnvoysIncludingGrpcStatusesAndOthersAreRefused() {
        var r = validate("a.yaml", CANARY.replace("- destinations:", "- retries: { attempts: 2, on: [unavailable, refused-stream, reset] }\n    destinations:"));
        assertTrue(r.ok(), errors(r).toString());
        assertEquals(List.of("unavailable", "refused-stream", "reset"),
                r.bundle().trafficFor("shop/product-catalog").orElseThrow().routes().get(0).retries().orElseThrow().on());
        r = validate("a.yaml", CANARY.replace("- destinations:", "- retries: { attempts: 2, on: [reset, unavailible] }\n    destinations:"));
        assertFalse(r.ok());
        assertTrue(errors(r).get(0).startsWith("a.yaml:9: spec.routes[0].retries.on[1]: must be one of [5xx, cancelled, connect-failure, "), errors(r).toString());
    }

    @Test
    void duplicateNamesAndTwoPoliciesForOneServiceAreRefused() {
        var r = PolicyValidator.validate(Map.of("a.yaml", CANARY, "b.yaml", CANARY), null);
        assertEquals(List.of("b.yaml:3: metadata.name: TrafficPolicy 'canary' is already defined at a.yaml:1"), errors(r));
        r = PolicyValidator.validate(Map.of("a.yaml", CANARY, "b.yaml", CANARY.replace("name: canary", "name: other")), null);
        assertEquals(List.of("b.yaml:1: spec.service: service shop/product-catalog already has a TrafficPolicy ('canary' at a.yaml:1);"
                + " give each service one, with all its routes"), errors(r));
    }

    @Test
    void aRouteShadowedByAnEarlierIdenticalMatchIsRefused() {
        String twice = CANARY.replace("  routes:\n  - destinations:", "  routes:\n  - match: { path: { prefix: /a } }\n"
                + "    destinations: [ { weight: 100 } ]\n  - match: { path: { prefix: /a } }\n    destinations:");
        var r = validate("a.yaml", twice);
        assertEquals(List.of("a.yaml:11: spec.routes[1].match: spec.routes[0] has the same match, so this route can never be used"), errors(r));
    }

    @Test
    void subsetsNoEndpointHasAreWarningsThatDoNotRefuse() {
        var r = PolicyValidator.validate(Map.of("a.yaml", CANARY), Map.of("shop/product-catalog", Set.of("v1")));
        assertTrue(r.ok());
        assertEquals(List.of("a.yaml:12: warning: spec.routes[0].destinations[1].subset: no endpoint of shop/product-catalog has version 'v2' yet"),
                errors(r));
        assertEquals(1, r.bundle().traffic().size());
    }

    @Test
    void syntaxErrorsAndWrongKindsAreReportedWithTheirLine() {
        assertEquals("a.yaml:3: not valid YAML", errors(validate("a.yaml", "kind: TrafficPolicy\nspec:\n  routes: [\n")).get(0).substring(0, 24));
        var r = validate("a.yaml", CANARY.replace("kind: TrafficPolicy", "kind: VirtualService"));
        assertTrue(errors(r).get(0).startsWith("a.yaml:2: kind: 'VirtualService' is not a policy kind"), errors(r).toString());
        r = validate("a.yaml", CANARY.replace("apiVersion: isthmus.dev/v1alpha1", "apiVersion: networking.istio.io/v1"));
        assertEquals(List.of("a.yaml:1: apiVersion: must be isthmus.dev/v1alpha1, found 'networking.istio.io/v1'"), errors(r));
    }

    @Test
    void authorizationRulesAreChecked() {
        var r = validate("authz.yaml", """
                apiVersion: isthmus.dev/v1alpha1
                kind: AuthorizationPolicy
                metadata: { name: x, namespace: shop }
                spec:
                  service: product-catalog
                  action: MAYBE
                  rules:
                  - from: [ { principal: "not-a-spiffe-id" } ]
                    to: [ { methods: [FETCH], paths: ["/a*b"] } ]
                """);
        assertEquals(List.of("authz.yaml:6: spec.action: must be ALLOW or DENY, found 'MAYBE'",
                "authz.yaml:8: spec.rules[0].from[0].principal: 'not-a-spiffe-id' is not a SPIFFE ID (spiffe://trust-domain/path)",
                "authz.yaml:9: spec.rules[0].to[0].methods[0]: must be an HTTP method such as GET, found 'FETCH'",
                "authz.yaml:9: spec.rules[0].to[0].paths[0]: must be a path starting with '/', with '*' only at its end (a prefix), found '/a*b'"),
                errors(r));
    }
}
