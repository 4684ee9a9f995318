//! The Khronos ICD dispatch table, in `cl_icd.h` order (`opencl-sys`
//! defines the layout). Every object's first field points here.
//!
//! Every slot holds a function: the implemented entry points, or a stub
//! from [`super::stubs`] returning `CL_INVALID_OPERATION`. The one integer
//! slot (`clGetKernelSuggestedLocalWorkSize`, OpenCL 3.1 only) stays zero.

use opencl_sys::cl_icd::cl_icd_dispatch;

use super::{
    callbacks, compile, context, devices, enqueue, event, image, kernel, map, memory, platform,
    program, queue, rect, sampler, stubs,
};

/// The shim's dispatch table.
pub(crate) static DISPATCH: cl_icd_dispatch = cl_icd_dispatch {
    clGetPlatformIDs: Some(platform::clGetPlatformIDs),
    clGetPlatformInfo: Some(platform::clGetPlatformInfo),
    clGetDeviceIDs: Some(platform::clGetDeviceIDs),
    clGetDeviceInfo: Some(platform::clGetDeviceInfo),
    clCreateContext: Some(context::clCreateContext),
    clCreateContextFromType: Some(context::clCreateContextFromType),
    clRetainContext: Some(context::clRetainContext),
    clReleaseContext: Some(context::clReleaseContext),
    clGetContextInfo: Some(context::clGetContextInfo),
    clCreateCommandQueue: Some(queue::clCreateCommandQueue),
    clRetainCommandQueue: Some(queue::clRetainCommandQueue),
    clReleaseCommandQueue: Some(queue::clReleaseCommandQueue),
    clGetCommandQueueInfo: Some(queue::clGetCommandQueueInfo),
    clSetCommandQueueProperty: Some(stubs::clSetCommandQueueProperty),
    clCreateBuffer: Some(memory::clCreateBuffer),
    clCreateImage2D: Some(image::clCreateImage2D),
    clCreateImage3D: Some(image::clCreateImage3D),
    clRetainMemObject: Some(memory::clRetainMemObject),
    clReleaseMemObject: Some(memory::clReleaseMemObject),
    clGetSupportedImageFormats: Some(context::clGetSupportedImageFormats),
    clGetMemObjectInfo: Some(memory::clGetMemObjectInfo),
    clGetImageInfo: Some(image::clGetImageInfo),
    clCreateSampler: Some(sampler::clCreateSampler),
    clRetainSampler: Some(sampler::clRetainSampler),
    clReleaseSampler: Some(sampler::clReleaseSampler),
    clGetSamplerInfo: Some(sampler::clGetSamplerInfo),
    clCreateProgramWithSource: Some(program::clCreateProgramWithSource),
    clCreateProgramWithBinary: Some(program::clCreateProgramWithBinary),
    clRetainProgram: Some(program::clRetainProgram),
    clReleaseProgram: Some(program::clReleaseProgram),
    clBuildProgram: Some(program::clBuildProgram),
    clUnloadCompiler: Some(platform::clUnloadCompiler),
    clGetProgramInfo: Some(program::clGetProgramInfo),
    clGetProgramBuildInfo: Some(program::clGetProgramBuildInfo),
    clCreateKernel: Some(kernel::clCreateKernel),
    clCreateKernelsInProgram: Some(kernel::clCreateKernelsInProgram),
    clRetainKernel: Some(kernel::clRetainKernel),
    clReleaseKernel: Some(kernel::clReleaseKernel),
    clSetKernelArg: Some(kernel::clSetKernelArg),
    clGetKernelInfo: Some(kernel::clGetKernelInfo),
    clGetKernelWorkGroupInfo: Some(kernel::clGetKernelWorkGroupInfo),
    clWaitForEvents: Some(event::clWaitForEvents),
    clGetEventInfo: Some(event::clGetEventInfo),
    clRetainEvent: Some(event::clRetainEvent),
    clReleaseEvent: Some(event::clReleaseEvent),
    clGetEventProfilingInfo: Some(event::clGetEventProfilingInfo),
    clFlush: Some(queue::clFlush),
    clFinish: Some(queue::clFinish),
    clEnqueueReadBuffer: Some(enqueue::clEnqueueReadBuffer),
    clEnqueueWriteBuffer: Some(enqueue::clEnqueueWriteBuffer),
    clEnqueueCopyBuffer: Some(enqueue::clEnqueueCopyBuffer),
    clEnqueueReadImage: Some(image::clEnqueueReadImage),
    clEnqueueWriteImage: Some(image::clEnqueueWriteImage),
    clEnqueueCopyImage: Some(image::clEnqueueCopyImage),
    clEnqueueCopyImageToBuffer: Some(image::clEnqueueCopyImageToBuffer),
    clEnqueueCopyBufferToImage: Some(image::clEnqueueCopyBufferToImage),
    clEnqueueMapBuffer: Some(map::clEnqueueMapBuffer),
    clEnqueueMapImage: Some(map::clEnqueueMapImage),
    clEnqueueUnmapMemObject: Some(map::clEnqueueUnmapMemObject),
    clEnqueueNDRangeKernel: Some(enqueue::clEnqueueNDRangeKernel),
    clEnqueueTask: Some(enqueue::clEnqueueTask),
    clEnqueueNativeKernel: Some(stubs::clEnqueueNativeKernel),
    clEnqueueMarker: Some(enqueue::clEnqueueMarker),
    clEnqueueWaitForEvents: Some(enqueue::clEnqueueWaitForEvents),
    clEnqueueBarrier: Some(enqueue::clEnqueueBarrier),
    clGetExtensionFunctionAddress: Some(super::clGetExtensionFunctionAddress),
    clCreateFromGLBuffer: Some(stubs::clCreateFromGLBuffer),
    clCreateFromGLTexture2D: Some(stubs::clCreateFromGLTexture2D),
    clCreateFromGLTexture3D: Some(stubs::clCreateFromGLTexture3D),
    clCreateFromGLRenderbuffer: Some(stubs::clCreateFromGLRenderbuffer),
    clGetGLObjectInfo: Some(stubs::clGetGLObjectInfo),
    clGetGLTextureInfo: Some(stubs::clGetGLTextureInfo),
    clEnqueueAcquireGLObjects: Some(stubs::clEnqueueAcquireGLObjects),
    clEnqueueReleaseGLObjects: Some(stubs::clEnqueueReleaseGLObjects),
    clGetGLContextInfoKHR: Some(stubs::clGetGLContextInfoKHR),
    clGetDeviceIDsFromD3D10KHR: Some(stubs::clGetDeviceIDsFromD3D10KHR),
    clCreateFromD3D10BufferKHR: Some(stubs::clCreateFromD3D10BufferKHR),
    clCreateFromD3D10Texture2DKHR: Some(stubs::clCreateFromD3D10Texture2DKHR),
    clCreateFromD3D10Texture3DKHR: Some(stubs::clCreateFromD3D10Texture3DKHR),
    clEnqueueAcquireD3D10ObjectsKHR: Some(stubs::clEnqueueAcquireD3D10ObjectsKHR),
    clEnqueueReleaseD3D10ObjectsKHR: Some(stubs::clEnqueueReleaseD3D10ObjectsKHR),
    clSetEventCallback: Some(event::clSetEventCallback),
    clCreateSubBuffer: Some(memory::clCreateSubBuffer),
    clSetMemObjectDestructorCallback: Some(callbacks::clSetMemObjectDestructorCallback),
    clCreateUserEvent: Some(event::clCreateUserEvent),
    clSetUserEventStatus: Some(event::clSetUserEventStatus),
    clEnqueueReadBufferRect: Some(rect::clEnqueueReadBufferRect),
    clEnqueueWriteBufferRect: Some(rect::clEnqueueWriteBufferRect),
    clEnqueueCopyBufferRect: Some(rect::clEnqueueCopyBufferRect),
    clCreateSubDevicesEXT: Some(stubs::clCreateSubDevicesEXT),
    clRetainDeviceEXT: Some(stubs::clRetainDeviceEXT),
    clReleaseDeviceEXT: Some(stubs::clReleaseDeviceEXT),
    clCreateEventFromGLsyncKHR: Some(stubs::clCreateEventFromGLsyncKHR),
    clCreateSubDevices: Some(devices::clCreateSubDevices),
    clRetainDevice: Some(devices::clRetainDevice),
    clReleaseDevice: Some(devices::clReleaseDevice),
    clCreateImage: Some(image::clCreateImage),
    clCreateProgramWithBuiltInKernels: Some(compile::clCreateProgramWithBuiltInKernels),
    clCompileProgram: Some(compile::clCompileProgram),
    clLinkProgram: Some(compile::clLinkProgram),
    clUnloadPlatformCompiler: Some(platform::clUnloadPlatformCompiler),
    clGetKernelArgInfo: Some(kernel::clGetKernelArgInfo),
    clEnqueueFillBuffer: Some(enqueue::clEnqueueFillBuffer),
    clEnqueueFillImage: Some(image::clEnqueueFillImage),
    clEnqueueMigrateMemObjects: Some(enqueue::clEnqueueMigrateMemObjects),
    clEnqueueMarkerWithWaitList: Some(enqueue::clEnqueueMarkerWithWaitList),
    clEnqueueBarrierWithWaitList: Some(enqueue::clEnqueueBarrierWithWaitList),
    clGetExtensionFunctionAddressForPlatform: Some(super::clGetExtensionFunctionAddressForPlatform),
    clCreateFromGLTexture: Some(stubs::clCreateFromGLTexture),
    clGetDeviceIDsFromD3D11KHR: Some(stubs::clGetDeviceIDsFromD3D11KHR),
    clCreateFromD3D11BufferKHR: Some(stubs::clCreateFromD3D11BufferKHR),
    clCreateFromD3D11Texture2DKHR: Some(stubs::clCreateFromD3D11Texture2DKHR),
    clCreateFromD3D11Texture3DKHR: Some(stubs::clCreateFromD3D11Texture3DKHR),
    clCreateFromDX9MediaSurfaceKHR: Some(stubs::clCreateFromDX9MediaSurfaceKHR),
    clEnqueueAcquireD3D11ObjectsKHR: Some(stubs::clEnqueueAcquireD3D11ObjectsKHR),
    clEnqueueReleaseD3D11ObjectsKHR: Some(stubs::clEnqueueReleaseD3D11ObjectsKHR),
    clGetDeviceIDsFromDX9MediaAdapterKHR: Some(stubs::clGetDeviceIDsFromDX9MediaAdapterKHR),
    clEnqueueAcquireDX9MediaSurfacesKHR: Some(stubs::clEnqueueAcquireDX9MediaSurfacesKHR),
    clEnqueueReleaseDX9MediaSurfacesKHR: Some(stubs::clEnqueueReleaseDX9MediaSurfacesKHR),
    clCreateFromEGLImageKHR: Some(stubs::clCreateFromEGLImageKHR),
    clEnqueueAcquireEGLObjectsKHR: Some(stubs::clEnqueueAcquireEGLObjectsKHR),
    clEnqueueReleaseEGLObjectsKHR: Some(stubs::clEnqueueReleaseEGLObjectsKHR),
    clCreateEventFromEGLSyncKHR: Some(stubs::clCreateEventFromEGLSyncKHR),
    clCreateCommandQueueWithProperties: Some(queue::clCreateCommandQueueWithProperties),
    clCreatePipe: Some(stubs::clCreatePipe),
    clGetPipeInfo: Some(stubs::clGetPipeInfo),
    clSVMAlloc: Some(stubs::clSVMAlloc),
    clSVMFree: Some(stubs::clSVMFree),
    clEnqueueSVMFree: Some(stubs::clEnqueueSVMFree),
    clEnqueueSVMMemcpy: Some(stubs::clEnqueueSVMMemcpy),
    clEnqueueSVMMemFill: Some(stubs::clEnqueueSVMMemFill),
    clEnqueueSVMMap: Some(stubs::clEnqueueSVMMap),
    clEnqueueSVMUnmap: Some(stubs::clEnqueueSVMUnmap),
    clCreateSamplerWithProperties: Some(sampler::clCreateSamplerWithProperties),
    clSetKernelArgSVMPointer: Some(stubs::clSetKernelArgSVMPointer),
    clSetKernelExecInfo: Some(stubs::clSetKernelExecInfo),
    clGetKernelSubGroupInfoKHR: Some(stubs::clGetKernelSubGroupInfoKHR),
    clCloneKernel: Some(kernel::clCloneKernel),
    clCreateProgramWithIL: Some(compile::clCreateProgramWithIL),
    clEnqueueSVMMigrateMem: Some(stubs::clEnqueueSVMMigrateMem),
    clGetDeviceAndHostTimer: Some(devices::clGetDeviceAndHostTimer),
    clGetHostTimer: Some(devices::clGetHostTimer),
    clGetKernelSubGroupInfo: Some(stubs::clGetKernelSubGroupInfo),
    clSetDefaultDeviceCommandQueue: Some(stubs::clSetDefaultDeviceCommandQueue),
    clSetProgramReleaseCallback: Some(callbacks::clSetProgramReleaseCallback),
    clSetProgramSpecializationConstant: Some(compile::clSetProgramSpecializationConstant),
    clCreateBufferWithProperties: Some(memory::clCreateBufferWithProperties),
    clCreateImageWithProperties: Some(image::clCreateImageWithProperties),
    clSetContextDestructorCallback: Some(callbacks::clSetContextDestructorCallback),
    clGetKernelSuggestedLocalWorkSize: 0,
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_function_slot_is_filled() {
        const WORDS: usize = std::mem::size_of::<cl_icd_dispatch>() / std::mem::size_of::<usize>();
        assert_eq!(
            WORDS * std::mem::size_of::<usize>(),
            std::mem::size_of::<cl_icd_dispatch>()
        );
        // SAFETY: the table is `repr(C)` and made only of pointer-sized
        // fields (function pointers and one `intptr_t`), so it reads as an
        // array of words.
        let words: &[usize; WORDS] = unsafe { &*(&DISPATCH as *const cl_icd_dispatch).cast() };
        let empty: Vec<usize> = (0..WORDS).filter(|i| words[*i] == 0).collect();
        // Only the last slot (clGetKernelSuggestedLocalWorkSize, an
        // integer without OpenCL 3.1) may be zero.
        assert_eq!(empty, vec![WORDS - 1]);
    }

    #[test]
    fn slots_point_at_the_implementations() {
        assert_eq!(
            DISPATCH.clGetPlatformInfo.map(|f| f as usize),
            Some(platform::clGetPlatformInfo as *const () as usize)
        );
        assert_eq!(
            DISPATCH.clSetKernelArg.map(|f| f as usize),
            Some(kernel::clSetKernelArg as *const () as usize)
        );
        assert_eq!(
            DISPATCH.clEnqueueNDRangeKernel.map(|f| f as usize),
            Some(enqueue::clEnqueueNDRangeKernel as *const () as usize)
        );
    }
}
