module github.com/certgate/mtls/examples/grpc

go 1.26.0

replace (
	github.com/certgate/mtls => ../..
	github.com/certgate/mtls/mtlsgrpc => ../../mtlsgrpc
)

require (
	github.com/certgate/mtls v0.1.0
	github.com/certgate/mtls/mtlsgrpc v0.1.0
	github.com/stretchr/testify v1.12.1
	google.golang.org/genproto/googleapis/rpc v0.0.0-20261110000943-09e21b237f2c
	google.golang.org/grpc v1.85.0
	google.golang.org/protobuf v1.36.12
)

require (
	go.yaml.in/yaml/v3 v3.0.5 // indirect
	golang.org/x/crypto v0.57.0 // indirect
	golang.org/x/net v0.60.0 // indirect
	golang.org/x/sync v0.23.0 // indirect
	golang.org/x/sys v0.48.0 // indirect
	golang.org/x/text v0.42.0 // indirect
	golang.org/x/time v0.15.0 // indirect
)
