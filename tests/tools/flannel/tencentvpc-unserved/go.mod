// The module proxy does not serve github.com/tencentcloud/tencentcloud-sdk-go/
// tencentcloud/vpc (403 for every version), which flanneld's tencentvpc
// backend imports. This stand-in has just the API that backend uses and
// fails every call: the test runs the vxlan backend, never tencentvpc.
module github.com/tencentcloud/tencentcloud-sdk-go/tencentcloud/vpc

go 1.26.8
