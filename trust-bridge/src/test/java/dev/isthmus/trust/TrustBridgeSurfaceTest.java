package dev.isthmus.trust;

import static io.restassured.RestAssured.given;
import static org.hamcrest.Matchers.equalTo;
import static org.junit.jupiter.api.Assertions.assertEquals;

import io.quarkus.test.junit.QuarkusTest;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import org.junit.jupiter.api.Test;

@QuarkusTest
class TrustBridgeSurfaceTest {

    @Test
    void isReadyOnceItsCaIsLoaded() {
        given().get("/q/health/ready").then().statusCode(200);
        given().get("/q/metrics").then().statusCode(200);
    }

    @Test
    void servesItsTrustDomainBundle() {
        given().get("/api/v1/trust/bundle").then().statusCode(200)
                .body("trust_domain", equalTo("test-east.acme.isthmus"))
                .body("keys[0].use", equalTo("x509-svid"));
    }

    @Test
    void keepsTheRootKeyReadableByItsOwnerOnly() throws Exception {
        var perms = Files.getPosixFilePermissions(Path.of("target/test-ca/root-key.pem"));
        assertEquals("rw-------", PosixFilePermissions.toString(perms));
    }
}
