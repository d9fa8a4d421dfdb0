/**
 * gRPC server reflection (grpc.reflection.v1), so `buf curl`, grpcurl and
 * Postman can list and call the service without a local copy of the protos.
 * No npm package implements it for connect-es v2, so it is written here from
 * the descriptors protoc-gen-es embeds in gen/.
 */
import { create, createRegistry, toBinary, type DescFile, type MessageInitShape } from "@bufbuild/protobuf";
import { FileDescriptorProtoSchema } from "@bufbuild/protobuf/wkt";
import { Code, type ConnectRouter } from "@connectrpc/connect";
import {
  ServerReflection,
  ServerReflectionResponseSchema,
  type ServerReflectionRequest,
} from "../../gen/grpc/reflection/v1/reflection_pb.js";

/**
 * Registers grpc.reflection.v1.ServerReflection on a router, describing the
 * services in `files` (and everything they import).
 */
export function registerReflection(router: ConnectRouter, files: DescFile[]): void {
  const registry = createRegistry(...files);
  const byName = new Map<string, DescFile>();
  const index = (file: DescFile) => {
    if (byName.has(file.name)) return;
    byName.set(file.name, file);
    file.dependencies.forEach(index);
  };
  files.forEach(index);
  const services = files.flatMap((file) => file.services.map((service) => service.typeName));

  /** Returns a file and its transitive imports, the file first, as serialized FileDescriptorProtos. */
  function withDependencies(file: DescFile): Uint8Array[] {
    const seen = new Set<string>();
    const ordered: DescFile[] = [];
    const visit = (current: DescFile) => {
      if (seen.has(current.name)) return;
      seen.add(current.name);
      ordered.push(current);
      current.dependencies.forEach(visit);
    };
    visit(file);
    return ordered.map((item) => toBinary(FileDescriptorProtoSchema, item.proto));
  }

  function answer(req: ServerReflectionRequest): MessageInitShape<typeof ServerReflectionResponseSchema>["messageResponse"] {
    const notFound = (what: string) => ({
      case: "errorResponse" as const,
      value: { errorCode: Code.NotFound, errorMessage: `${what} not found` },
    });
    const files = (file: DescFile | undefined, what: string) =>
      file ? { case: "fileDescriptorResponse" as const, value: { fileDescriptorProto: withDependencies(file) } } : notFound(what);
    switch (req.messageRequest.case) {
      case "listServices":
        return { case: "listServicesResponse", value: { service: services.map((name) => ({ name })) } };
      case "fileByFilename":
        return files(byName.get(req.messageRequest.value), `file ${req.messageRequest.value}`);
      case "fileContainingSymbol": {
        const symbol = req.messageRequest.value;
        // A method is named service.method; look up its service.
        const desc = registry.get(symbol) ?? registry.get(symbol.slice(0, Math.max(0, symbol.lastIndexOf("."))));
        return files(desc && "file" in desc ? desc.file : undefined, `symbol ${symbol}`);
      }
      case "fileContainingExtension":
        return notFound(`extension ${req.messageRequest.value.containingType}#${req.messageRequest.value.extensionNumber}`);
      case "allExtensionNumbersOfType":
        return { case: "allExtensionNumbersResponse", value: { baseTypeName: req.messageRequest.value, extensionNumber: [] } };
      default:
        return { case: "errorResponse", value: { errorCode: Code.InvalidArgument, errorMessage: "unknown request" } };
    }
  }

  router.service(ServerReflection, {
    async *serverReflectionInfo(requests) {
      for await (const req of requests) {
        yield create(ServerReflectionResponseSchema, { validHost: req.host, originalRequest: req, messageResponse: answer(req) });
      }
    },
  });
}
