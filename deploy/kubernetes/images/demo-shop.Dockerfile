# The demo shop's three apps in one image; a Deployment picks one with its args (../shop/shop.yaml).
# Build context: the repository's root, after the build (./mvnw -B package -DskipTests):
# docker build -f deploy/kubernetes/images/demo-shop.Dockerfile -t REGISTRY/isthmus/demo-shop:0.1.0 .
# e2e KubernetesDeploymentIT lays out this image's files as the COPY lines say and runs its ENTRYPOINT.
FROM eclipse-temurin:21-jre
COPY demo-shop/user-login/target/user-login.jar /opt/isthmus/demo-shop/user-login/
COPY demo-shop/user-login/target/lib/ /opt/isthmus/demo-shop/user-login/lib/
COPY demo-shop/product-catalog/target/product-catalog.jar /opt/isthmus/demo-shop/product-catalog/
COPY demo-shop/product-catalog/target/lib/ /opt/isthmus/demo-shop/product-catalog/lib/
COPY demo-shop/order-processing/target/order-processing.jar /opt/isthmus/demo-shop/order-processing/
COPY demo-shop/order-processing/target/lib/ /opt/isthmus/demo-shop/order-processing/lib/
WORKDIR /opt/isthmus/demo-shop
USER 10001
ENTRYPOINT ["java", "-Xmx64m", "-XX:+UseSerialGC", "-XX:TieredStopAtLevel=1", "-jar"]
CMD ["/opt/isthmus/demo-shop/product-catalog/product-catalog.jar"]
