# Installs the headers and an exported CMake package so that find_package(longseq CONFIG) works.
include(CMakePackageConfigHelpers)
install(DIRECTORY include/longseq DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
install(TARGETS longseq EXPORT longseqTargets)
install(EXPORT longseqTargets NAMESPACE longseq:: DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/longseq)
configure_package_config_file(cmake/longseqConfig.cmake.in
  ${CMAKE_CURRENT_BINARY_DIR}/longseqConfig.cmake
  INSTALL_DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/longseq)
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/longseqConfigVersion.cmake
  COMPATIBILITY SameMinorVersion ARCH_INDEPENDENT)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/longseqConfig.cmake
              ${CMAKE_CURRENT_BINARY_DIR}/longseqConfigVersion.cmake
              cmake/FindFFTW3.cmake cmake/LongseqDependencies.cmake
        DESTINATION ${CMAKE_INSTALL_LIBDIR}/cmake/longseq)
