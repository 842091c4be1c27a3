# Included by llama.cpp's own CMakeLists right after its project() (make install passes
# -DCMAKE_PROJECT_llama.cpp_INCLUDE=<this file> in CMAKE_ARGS when llama-cpp-python is compiled).
# llama-cpp-python forces LLAMA_BUILD_COMMON on, but its Python package loads only libllama and
# libggml*: the common library (argument parsing, chat templates, downloads over cpp-httplib) is
# for llama.cpp's own tools and the multimodal library, which the text-only server never loads.
# A normal variable here shadows the forced cache entry inside llama.cpp's directory (policy
# CMP0077), so the common library and cpp-httplib are not compiled.
set(LLAMA_BUILD_COMMON OFF)
