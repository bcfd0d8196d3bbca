# The trust-bridge image. Build context: the repository's root, after the build
# (./mvnw -B package -DskipTests): docker build -f deploy/kubernetes/images/trust-bridge.Dockerfile -t REGISTRY/isthmus/trust-bridge:0.1.0 .
# e2e KubernetesDeploymentIT lays out this image's files as the COPY lines say and runs its ENTRYPOINT.
FROM eclipse-temurin:21-jre
COPY trust-bridge/target/quarkus-app/ /opt/isthmus/trust-bridge/
WORKDIR /opt/isthmus/trust-bridge
USER 10001
ENTRYPOINT ["java", "-Xmx128m", "-XX:+UseSerialGC", "-XX:+ExitOnOutOfMemoryError", "-XX:+UnlockExperimentalVMOptions", "-XX:TrimNativeHeapInterval=1000", "-jar", "/opt/isthmus/trust-bridge/quarkus-run.jar"]
